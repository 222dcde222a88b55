import { Template } from '@huggingface/jinja';

/**
 * Chat templates: Jinja, as in Hugging Face's tokenizer_config.json (rendered by @huggingface/jinja,
 * which needs no eval and so runs in Workers). An adapter may keep its own template in the
 * registry, e.g. the VLM paper's task layout `<source> ... <target>`; without one, the adapter's
 * task tokens come first and the messages' text follows, one message per line.
 */
const DEFAULT_CHAT_TEMPLATE =
  '{%- for t in task_tokens %}{{ t }}{% endfor -%}' +
  "{%- for m in messages %}{{ m.content }}{% if not loop.last %}{{ '\\n' }}{% endif %}{% endfor -%}";

export interface ChatMessage {
  role: string;
  content: string | Array<{ type: 'text'; text: string }>;
}

const compiled = new Map<string, Template>();

export class TemplateError extends Error {
  override name = 'TemplateError';
}

export function renderChat(
  messages: readonly ChatMessage[],
  opts: { template?: string | null; taskTokens?: readonly string[] } = {},
): string {
  const source = opts.template || DEFAULT_CHAT_TEMPLATE;
  let template = compiled.get(source);
  try {
    if (!template) compiled.set(source, (template = new Template(source)));
    return template.render({
      messages: messages.map((m) => ({
        role: m.role,
        content: typeof m.content === 'string' ? m.content : m.content.map((p) => p.text).join(''),
      })),
      task_tokens: [...(opts.taskTokens ?? [])],
      add_generation_prompt: true,
    });
  } catch (e) {
    throw new TemplateError(`the chat template failed: ${(e as Error).message}`);
  }
}
