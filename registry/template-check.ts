import { parseChatTemplate, renderChat, TemplateBudgetError } from '../src/engine/tokenizer/chat-template.ts';

/** A short conversation every template is tried on when saved: one that runs over its budget here always would. */
const SAMPLE = [
  { role: 'system', content: 'You are a helpful assistant.' },
  { role: 'user', content: 'Hello!' },
  { role: 'assistant', content: 'Hi. How can I help?' },
  { role: 'user', content: 'Tell me a story.' },
];

/**
 * Checks a chat template when it is saved. The Jinja parser does not say where it stopped, so the
 * line is found by bisection: the first line whose prefix of the template fails the same way as
 * the whole (a prefix that stops before the error is at worst incomplete, which fails otherwise).
 * O(log lines) parses. A template that parses is rendered once, on SAMPLE, under the render budget
 * (other failures there are not its fault: a template may refuse roles it does not know). Returns
 * the message for a 400, or undefined when the template is fine.
 */
export function chatTemplateError(source: string): string | undefined {
  const message = parseError(source);
  if (message === undefined) return budgetError(source);
  const lines = source.split('\n');
  let lo = 1;
  let hi = lines.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (parseError(lines.slice(0, mid).join('\n')) === message) hi = mid;
    else lo = mid + 1;
  }
  const at = `line ${lo}`;
  return message.includes('does not parse:')
    ? message.replace('does not parse:', `does not parse at ${at}:`)
    : `${at}: ${message}`;
}

function budgetError(source: string): string | undefined {
  try {
    renderChat(SAMPLE, { template: source });
  } catch (e) {
    if (e instanceof TemplateBudgetError) return `${e.message} (rendering a four-message conversation)`;
  }
  return undefined;
}

function parseError(source: string): string | undefined {
  try {
    parseChatTemplate(source);
    return undefined;
  } catch (e) {
    // The parser reads past its last token on some unfinished input: say what that means.
    const message = (e as Error).message.replace(
      /Cannot read properties of undefined.*$/,
      'unexpected end of the template (an unclosed tag or expression?)',
    );
    return message;
  }
}
