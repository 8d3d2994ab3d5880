import { devUser } from './standins/identities';

// The "Try it" part of `npm start`'s banner: commands a newcomer copies as they are. Pure, so a
// test can check that what it prints is a request the app accepts.

const BOB = devUser('bob').upn;
// A text topic needs an https link on a Teams host; this one has the shape of a Teams entity link.
const EXPENSES_LINK = 'https://teams.microsoft.com/l/entity/00000000-0000-0000-0000-000000000000/expenses';
const ORDERS_LINK = 'https://teams.microsoft.com/l/entity/00000000-0000-0000-0000-000000000000/orders';

/**
 * The banner's examples. `api` is the functions' `…/api` URL; `graphPage` the Graph stand-in's
 * page when it runs (a given GRAPH_BASE_URL has none).
 */
export function tryItLines(api: string, graphPage: string | undefined): string[] {
  const post = (path: string): string =>
    `  curl -s -X POST ${api}/${path} -H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/json'`;
  return [
    'Try it:',
    `  curl -s ${api}/health`,
    '  TOKEN=$(npm run --silent token -- --user alice)',
    `${post('notifications')} \\`,
    `    -d '{"appNotificationId":"hello-1","payload":{"visualContent":{"title":"Hello from graph-notify","body":"Sent on your behalf"}}}'`,
    'What became of it (its delivery-ledger entry):',
    `  curl -s ${api}/notifications/hello-1 -H "Authorization: Bearer $TOKEN"`,
    '',
    'In Teams, alice notifies bob (to carol, who has not installed the Teams app: 409):',
    // The body on several lines: JSON allows the breaks, and the shell keeps them inside '…'.
    `${post('activities')} -d '{`,
    `    "recipient":{"userId":"${BOB}"},"activityType":"systemDefault",`,
    `    "templateParameters":[{"name":"systemDefaultText","value":"approved your expense report"}],`,
    `    "previewText":{"content":"Expense report #42: 120 EUR"},`,
    `    "topic":{"source":"text","value":"Expense #42","webUrl":"${EXPENSES_LINK}"}}'`,
    ...(graphPage ? [`  then watch ${graphPage} (alice's notifications, bob's Teams feed)`] : []),
    '',
    'Later, from another system (alice registered by a send above):',
    '  npm run enqueue -- --user alice --title "Your order shipped" --in 10',
    // npm start sets no TEAMS_APP_ID, so the app has no default topic: the command names one.
    '  npm run enqueue -- --channel teams --user alice --to bob --text "shipped your order" --in 10 \\',
    `    --topic "Order #43" --web-url ${ORDERS_LINK}`,
  ];
}
