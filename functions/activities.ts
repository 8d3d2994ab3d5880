import { app } from '@azure/functions';
import { sendHandler, statusHandler } from '../shared/http/sends';
import { callers, ledger, notifications, teams } from '../shared/runtime';

app.http('sendActivity', {
  methods: ['POST'],
  authLevel: 'anonymous',
  route: 'activities',
  handler: sendHandler({ callers, notifications }, teams),
});

app.http('activityStatus', {
  methods: ['GET'],
  authLevel: 'anonymous',
  route: 'activities/{id}',
  handler: statusHandler({ callers, ledger }, 'teams'),
});
