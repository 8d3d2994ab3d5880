import { app } from '@azure/functions';
import { config, ledgerRetention } from '../shared/runtime';
import { loggerFor } from '../shared/http/respond';

app.timer('ledgerRetention', {
  // The validated setting rather than `%…%`: the host would refuse to start without the app
  // setting, where the app gives it a default.
  schedule: config.ledger.retentionSchedule,
  handler: async (_timer, context) => {
    await ledgerRetention.sweep(loggerFor(context));
  },
});
