import type { ReceivedNotification } from './graph';
import type { TeamsActivity } from './teams';
import { PREVIEW_SHOWN_CHARS } from './teams-body';

// The page someone trying the app keeps open: what "the user's devices" would have been sent, and
// each user's Teams activity feed as Teams shows it (actor, reason, preview, topic, time).
// Everything shown comes from request bodies and tokens, so every value goes through escapeHtml.

export function escapeHtml(value: string | number | null | undefined): string {
  return String(value ?? '')
    .replace(/&/g, '&amp;')
    .replace(/</g, '&lt;')
    .replace(/>/g, '&gt;')
    .replace(/"/g, '&quot;')
    .replace(/'/g, '&#39;');
}

/** The page is served with this policy: no script, no external fetch, even if escaping were missed. */
export const PAGE_CSP = "default-src 'none'; style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'";

const STYLE = `
body{font-family:system-ui,sans-serif;margin:1.5rem;background:#f5f5f7;color:#1d1d1f}
h1{font-size:1.3rem;margin:0 0 .25rem}
.meta{color:#666;font-size:.85rem;margin-bottom:1rem}
section{background:#fff;border-radius:8px;padding:.75rem 1rem;margin-bottom:1rem;box-shadow:0 1px 2px #0002}
h2{font-size:1rem;margin:.25rem 0 .5rem}
.card{border-left:4px solid #0a64d6;padding:.4rem .75rem;margin:.5rem 0;background:#fafafa}
.card.High{border-color:#c4262e}.card.Low{border-color:#999}
.title{font-weight:600}.body{margin:.15rem 0}
.raw{font-family:ui-monospace,monospace;font-size:.8rem;white-space:pre-wrap;word-break:break-all}
.small{color:#666;font-size:.75rem}
.empty{color:#666}
h3{font-size:.85rem;margin:.6rem 0 .2rem;color:#444;text-transform:uppercase;letter-spacing:.04em}
.activity{border-left:4px solid #5b5fc7;padding:.4rem .75rem;margin:.5rem 0;background:#f7f7fc}
.actor{font-weight:600}.preview{color:#333;margin:.15rem 0}
.topic a{color:#5b5fc7}
`;

function card(n: ReceivedNotification): string {
  const visual = n.notification.payload.visualContent;
  const raw = n.notification.payload.rawContent;
  const priority = n.notification.priority ?? '';
  const lines = [
    visual ? `<div class="title">${escapeHtml(visual.title)}</div>` : '',
    visual?.body != null ? `<div class="body">${escapeHtml(visual.body)}</div>` : '',
    raw != null ? `<div class="raw">raw: ${escapeHtml(raw)}</div>` : '',
    `<div class="small">${escapeHtml(n.updatedAt)} · priority ${escapeHtml(priority || 'not set')}` +
      ` · ${escapeHtml(n.targetHostName)} / ${escapeHtml(n.appNotificationId)}` +
      (n.notification.groupName != null ? ` · group ${escapeHtml(n.notification.groupName)}` : '') +
      ` · expires ${escapeHtml(n.notification.expirationDateTime)}` +
      (n.postCount > 1 ? ` · posted ${n.postCount} times` : '') +
      `</div>`,
  ];
  return `<div class="card ${escapeHtml(priority)}">${lines.join('')}</div>`;
}

/** Only web links become links (a topic's URLs come from request bodies). */
function safeHref(url: string | undefined): string | undefined {
  if (!url) return undefined;
  try {
    return new URL(url).protocol === 'https:' ? url : undefined;
  } catch {
    return undefined;
  }
}

function activityCard(a: TeamsActivity): string {
  const actor = a.actor.kind === 'app' ? a.actor.name : (a.actor.name ?? a.actor.upn ?? a.actor.oid);
  const preview = a.previewText ?? '';
  const shown = preview.length > PREVIEW_SHOWN_CHARS ? `${preview.slice(0, PREVIEW_SHOWN_CHARS)}…` : preview;
  // Teams links the topic: its webUrl when given, else the Graph entity it names.
  const href = safeHref(a.topic.webUrl ?? (a.topic.source === 'entityUrl' ? a.topic.value : undefined));
  const label = escapeHtml(a.topic.value);
  const topic = href
    ? `<a href="${escapeHtml(href)}" rel="noopener noreferrer" target="_blank">${label}</a>`
    : label;
  const lines = [
    `<div><span class="actor">${escapeHtml(actor)}</span>` +
      (a.actor.kind === 'app' ? ' <span class="small">(app)</span>' : '') +
      ` <span class="text">${escapeHtml(a.text)}</span></div>`,
    shown ? `<div class="preview">${escapeHtml(shown)}</div>` : '',
    `<div class="small topic">${topic} · ${escapeHtml(a.updatedAt)} · ${escapeHtml(a.activityType)}` +
      (a.chainId !== undefined ? ` · chain ${escapeHtml(a.chainId)}` : '') +
      (a.postCount > 1 ? ` · updated ${a.postCount - 1} time(s)` : '') +
      `</div>`,
  ];
  return `<div class="activity">${lines.join('')}</div>`;
}

interface UserView {
  label: string | undefined;
  notifications: ReceivedNotification[];
  activities: TeamsActivity[];
}

export function renderNotificationsPage(
  notifications: readonly ReceivedNotification[],
  info: { baseUrl: string; attempts: number; activities?: readonly TeamsActivity[]; teamsAttempts?: number },
): string {
  const activities = info.activities ?? [];
  const byUser = new Map<string, UserView>();
  const view = (oid: string): UserView => {
    const found = byUser.get(oid);
    if (found) return found;
    const fresh: UserView = { label: undefined, notifications: [], activities: [] };
    byUser.set(oid, fresh);
    return fresh;
  };
  for (const n of notifications) {
    const v = view(n.userOid);
    v.notifications.push(n);
    v.label ??= n.upn;
  }
  for (const a of activities) {
    const v = view(a.recipientOid);
    v.activities.push(a);
    v.label ??= a.recipientUpn;
  }
  const sections = [...byUser.entries()].map(([oid, v]) => {
    // Lists come in arrival order: reversed first, so two items of the same millisecond stay newest first.
    const newestFirst = <T extends { updatedAt: string }>(list: T[]): T[] =>
      [...list].reverse().sort((a, b) => b.updatedAt.localeCompare(a.updatedAt));
    const feed = v.activities.length
      ? `<h3>Teams activity feed</h3>${newestFirst(v.activities).map(activityCard).join('')}`
      : '';
    const cards = v.notifications.length
      ? `<h3>Graph notifications</h3>${newestFirst(v.notifications).map(card).join('')}`
      : '';
    return (
      `<section><h2>${escapeHtml(v.label ?? oid)} <span class="small">${escapeHtml(oid)}</span></h2>` +
      feed +
      cards +
      `</section>`
    );
  });
  const origin = info.baseUrl.replace(/\/beta$/, '');
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta http-equiv="refresh" content="2">
<title>Graph notifications stand-in</title><style>${STYLE}</style></head>
<body><h1>Microsoft Graph notifications (local stand-in)</h1>
<div class="meta">${escapeHtml(info.baseUrl)}/me/notifications · ${notifications.length} notification(s) ·
${info.attempts} POST attempt(s)<br>${escapeHtml(origin)}/v1.0/users/{id}/teamwork/sendActivityNotification ·
${activities.length} activity feed item(s) · ${info.teamsAttempts ?? 0} Teams attempt(s) · refreshes every 2 s</div>
${sections.length ? sections.join('\n') : '<p class="empty">No notification received yet.</p>'}
</body></html>`;
}
