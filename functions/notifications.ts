import { app } from '@azure/functions';
import { sendHandler, statusHandler } from '../shared/http/sends';
import { callers, ledger, notifications, notificationsOnGraph } from '../shared/runtime';

app.http('sendNotification', {
  methods: ['POST'],
  authLevel: 'anonymous',
  route: 'notifications',
  handler: sendHandler({ callers, notifications }, notificationsOnGraph),
});

app.http('notificationStatus', {
  methods: ['GET'],
  authLevel: 'anonymous',
  route: 'notifications/{id}',
  handler: statusHandler({ callers, ledger }, 'notifications'),
});
