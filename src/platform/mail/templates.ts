import type { MailMessage } from './index.js'

// Every mail has the same frame: a greeting, a few paragraphs, maybe one action (a link and, for
// an app or a terminal, the token it carries on a line of its own), and the product's name at the
// foot. Plain text and HTML come from the same parts.

export interface MailParts {
  to: string
  subject: string
  /** The paragraphs, plain text. */
  paragraphs: string[]
  action?: { label: string; url: string; token?: string }
  /** Paragraphs after the action. */
  after?: string[]
}

const escapeHtml = (text: string) => text.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!)

export function renderMail(productName: string, parts: MailParts): MailMessage {
  const text = [
    ...parts.paragraphs,
    ...(parts.action ? [`${parts.action.label}:\n${parts.action.url}`, ...(parts.action.token ? [`Token: ${parts.action.token}`] : [])] : []),
    ...(parts.after ?? []),
    `-- \n${productName}`,
  ].join('\n\n')
  const html = [
    '<!doctype html><html><body style="font-family: sans-serif; line-height: 1.5">',
    ...parts.paragraphs.map((p) => `<p>${escapeHtml(p)}</p>`),
    ...(parts.action
      ? [
          `<p><a href="${escapeHtml(parts.action.url)}">${escapeHtml(parts.action.label)}</a></p>`,
          ...(parts.action.token ? [`<p>Token: <code>${escapeHtml(parts.action.token)}</code></p>`] : []),
        ]
      : []),
    ...(parts.after ?? []).map((p) => `<p>${escapeHtml(p)}</p>`),
    `<p style="color: #666">${escapeHtml(productName)}</p>`,
    '</body></html>',
  ].join('\n')
  return { to: parts.to, subject: `${productName}: ${parts.subject}`, text, html }
}
