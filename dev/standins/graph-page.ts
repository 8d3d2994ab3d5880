import type { ReceivedNotification } from './graph';

// The page someone trying the app keeps open: what "the user's devices" would have been sent.
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

export function renderNotificationsPage(
  notifications: readonly ReceivedNotification[],
  info: { baseUrl: string; attempts: number },
): string {
  const byUser = new Map<string, ReceivedNotification[]>();
  for (const n of notifications) {
    const list = byUser.get(n.userOid) ?? [];
    list.push(n);
    byUser.set(n.userOid, list);
  }
  const sections = [...byUser.entries()].map(([oid, list]) => {
    const sorted = [...list].sort((a, b) => b.updatedAt.localeCompare(a.updatedAt));
    const who = sorted.find((n) => n.upn)?.upn;
    return (
      `<section><h2>${escapeHtml(who ?? oid)} <span class="small">${escapeHtml(oid)}</span></h2>` +
      sorted.map(card).join('') +
      `</section>`
    );
  });
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta http-equiv="refresh" content="2">
<title>Graph notifications stand-in</title><style>${STYLE}</style></head>
<body><h1>Microsoft Graph notifications (local stand-in)</h1>
<div class="meta">${escapeHtml(info.baseUrl)}/me/notifications · ${notifications.length} notification(s) ·
${info.attempts} POST attempt(s) · refreshes every 2 s</div>
${sections.length ? sections.join('\n') : '<p class="empty">No notification received yet.</p>'}
</body></html>`;
}
