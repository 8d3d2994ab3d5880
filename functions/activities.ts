import { app } from '@azure/functions';
import { readJsonBody } from '../shared/http/body';
import { answer, loggerFor } from '../shared/http/respond';
import { callers, notifications, teams } from '../shared/runtime';

app.http('sendActivity', {
  methods: ['POST'],
  authLevel: 'anonymous',
  route: 'activities',
  handler: (request, context) =>
    answer(request, context, async () => {
      const caller = await callers.verify(request.headers.get('authorization'));
      const body = await readJsonBody(request);
      const result = await notifications.send(teams, caller, body, loggerFor(context), context.invocationId);
      return { status: result.status === 'sent' ? 201 : 202, jsonBody: result };
    }),
});
