import { AppError } from '../../shared/errors';
import { toProblem } from '../../shared/http/problem';

describe('toProblem', () => {
  it('renders problem+json with a stable code', () => {
    const res = toProblem(new AppError('insufficient_scope', { detail: 'needs Notifications.Send' }));
    expect(res.status).toBe(403);
    expect(res.headers).toMatchObject({ 'content-type': 'application/problem+json' });
    expect(res.jsonBody).toEqual({
      type: 'urn:graph-notify:problem:insufficient_scope',
      title: 'Required scope missing',
      status: 403,
      detail: 'needs Notifications.Send',
      code: 'insufficient_scope',
    });
  });

  it('adds the WWW-Authenticate challenge a 401 calls for', () => {
    expect(toProblem(new AppError('missing_token')).headers).toMatchObject({ 'www-authenticate': 'Bearer' });
    expect(toProblem(new AppError('invalid_token')).headers).toMatchObject({
      'www-authenticate': 'Bearer error="invalid_token"',
    });
    const claims = Buffer.from('{"access_token":{"acrs":{"essential":true,"value":"c1"}}}').toString(
      'base64',
    );
    const stepUp = toProblem(
      new AppError('interaction_required', { authenticate: { error: 'insufficient_claims', claims } }),
    );
    expect(stepUp.headers).toMatchObject({
      'www-authenticate': `Bearer error="insufficient_claims", claims="${claims}"`,
    });
  });

  it('passes Retry-After on and answers 415 with the contract code invalid_request', () => {
    const res = toProblem(new AppError('upstream_unavailable', { retryAfterSeconds: 7.2 }));
    expect(res.headers).toMatchObject({ 'retry-after': '8' });
    expect((toProblem(new AppError('unsupported_media_type')).jsonBody as { code: string }).code).toBe(
      'invalid_request',
    );
  });

  it('says nothing of an unexpected error', () => {
    const res = toProblem(new Error('fetch failed: token=eyJhbGciOi...'));
    expect(res.status).toBe(500);
    expect(JSON.stringify(res.jsonBody)).not.toContain('eyJ');
  });
});
