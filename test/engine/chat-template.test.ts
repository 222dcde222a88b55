import { describe, expect, it } from 'vitest';
import { renderChat, TemplateError } from '../../src/engine/tokenizer/chat-template.ts';

/**
 * The chat template's switches, with vLLM's names: extra variables, the generation prompt,
 * continuing the last message.
 */
const TEMPLATE =
  '{% for m in messages %}<{{ m.role }}>{{ m.content }}</{{ m.role }}>{% endfor %}' +
  '{% if add_generation_prompt %}<assistant>{% endif %}{% if enable_thinking %}<think>{% endif %}';
const conversation = [
  { role: 'user', content: 'Hi' },
  { role: 'assistant', content: 'Once upon' },
];

describe('chat template switches', () => {
  it('chat_template_kwargs are template variables; add_generation_prompt defaults to true', () => {
    const first = conversation.slice(0, 1);
    expect(renderChat(first, { template: TEMPLATE })).toBe('<user>Hi</user><assistant>');
    expect(renderChat(first, { template: TEMPLATE, kwargs: { enable_thinking: true } })).toBe(
      '<user>Hi</user><assistant><think>',
    );
    expect(renderChat(first, { template: TEMPLATE, addGenerationPrompt: false })).toBe('<user>Hi</user>');
  });

  it('continue_final_message cuts the render after the final message, as transformers does', () => {
    expect(renderChat(conversation, { template: TEMPLATE, continueFinalMessage: true })).toBe(
      '<user>Hi</user><assistant>Once upon',
    );
    // A template that trims the message: its trailing space is not put back.
    const trimming = '{% for m in messages %}[{{ m.content | trim }}]{% endfor %}';
    const spaced = [{ role: 'assistant', content: 'Once upon ' }];
    expect(renderChat(spaced, { template: trimming, continueFinalMessage: true })).toBe('[Once upon');
  });

  it('refuses what cannot be rendered, saying why', () => {
    const render = (opts: Parameters<typeof renderChat>[1]) => () => renderChat(conversation, opts);
    expect(render({ template: TEMPLATE, kwargs: { messages: [] } })).toThrow(/may not set "messages"/);
    expect(render({ template: TEMPLATE, addGenerationPrompt: true, continueFinalMessage: true })).toThrow(
      /cannot both be true/,
    );
    expect(render({ template: '{{ messages[0].content }}', continueFinalMessage: true })).toThrow(TemplateError);
  });
});
