import { app, type HttpResponseInit } from '@azure/functions';
import { toProblem } from '../shared/http/problem';
import { health } from '../shared/runtime';

app.http('health', {
  methods: ['GET'],
  authLevel: 'anonymous',
  route: 'health',
  handler: async (): Promise<HttpResponseInit> => {
    const report = await health.check();
    if (report.healthy) return { status: 200, jsonBody: { status: 'ok', checks: report.checks } };
    return toProblem(report.error, { checks: report.checks });
  },
});
