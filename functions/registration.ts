import { app } from '@azure/functions';
import { answer } from '../shared/http/respond';
import { callers, notifications } from '../shared/runtime';

app.http('register', {
  methods: ['PUT'],
  authLevel: 'anonymous',
  route: 'me/registration',
  handler: (request, context) =>
    answer(request, context, async () => {
      await notifications.register(await callers.verify(request.headers.get('authorization')));
      return { status: 204 };
    }),
});

app.http('unregister', {
  methods: ['DELETE'],
  authLevel: 'anonymous',
  route: 'me/registration',
  handler: (request, context) =>
    answer(request, context, async () => {
      await notifications.unregister(await callers.verify(request.headers.get('authorization')));
      return { status: 204 };
    }),
});
