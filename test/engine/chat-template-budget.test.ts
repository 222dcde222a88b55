import { Template } from '@huggingface/jinja';
import { describe, expect, it } from 'vitest';
import { chatTemplateError } from '../../registry/template-check.ts';
import { renderChat, TemplateBudgetError, type ChatMessage } from '../../src/engine/tokenizer/chat-template.ts';

/**
 * A chat template is tenant code: its render is bounded while it runs (steps, the work of each
 * operation, the size of every value), so one template cannot hold the event loop or the heap.
 * Each bomb below held the edge for seconds to minutes (or crashed it) before the budget.
 */
const hi: ChatMessage[] = [{ role: 'user', content: 'hi' }];
const render = (template: string, messages = hi) => renderChat(messages, { template });

/** A string of 2^20 newlines, built by doubling (the budget allows it: about 2 MiB made in all). */
const MEGA =
  "{% set ns = namespace(s='\\n') %}{% for i in range(20) %}{% set ns.s = ns.s ~ ns.s %}{% endfor %}{% set s = ns.s %}";

describe('a chat template over its budget fails that render with a TemplateBudgetError', () => {
  it.each([
    [
      'replace() doubling a string (held the event loop 15 s)',
      "{% set s = 'a' %}{% for i in range(25) %}{% set s = s.replace('a','aa') %}{% endfor %}{{ s|length }}",
    ],
    ['a range of 20 million numbers (21 s, +0.94 GB)', '{{ range(20000000)|length }}'],
    ['replace() with an empty pattern', `${MEGA}{{ s.replace('', s)|length }}`],
    ['the |replace filter', `${MEGA}{{ (s|replace('\\n', s))|length }}`],
    ['indent() by a large width', `${MEGA}{{ s|indent(100000)|length }}`],
    ['join() with a long separator', `${MEGA}{{ s|join(s)|length }}`],
    ['split() into a million pieces', `${MEGA}{{ s.split('\\n')|length }}`],
    ['tojson with a huge indent', '{{ [[[[1]]]]|tojson(indent=100000000) }}'],
    [
      'tojson of a list holding a namespace that grew after the list was made',
      `${MEGA}{% set ns = namespace(s='') %}{% set l = [ns, ns, ns, ns, ns, ns, ns, ns] %}{% set ns.s = s %}` +
        '{{ l|tojson|length }}',
    ],
    [
      'a list grown by concatenation in a loop (quadratic work)',
      '{% set ns = namespace(l=[]) %}{% for i in range(50000) %}{% set ns.l = ns.l + [i] %}{% endfor %}' +
        '{{ ns.l|length }}',
    ],
    [
      'output over the limit (64 KiB, 100 times)',
      "{% set ns = namespace(s='x') %}{% for i in range(16) %}{% set ns.s = ns.s ~ ns.s %}{% endfor %}" +
        '{% for i in range(100) %}{{ ns.s }}{% endfor %}',
    ],
    [
      'nested loops (the step budget)',
      '{% for a in range(1000) %}{% for b in range(100) %}{% if a > b %}x{% endif %}{% endfor %}{% endfor %}',
    ],
  ])('%s', (_, template) => {
    expect(() => render(template)).toThrow(TemplateBudgetError);
  });

  it('says which budget ran out', () => {
    expect(() => render('{{ range(20000000)|length }}')).toThrow(/range\(\) of 20000000 numbers would be over/);
    expect(() =>
      render('{% for a in range(1000) %}{% for b in range(100) %}{% if a > b %}x{% endif %}{% endfor %}{% endfor %}'),
    ).toThrow(/ran over its budget of 100000 steps/);
  });

  it('the budget is per render: the next render is unaffected', () => {
    expect(() => render('{{ range(20000000)|length }}')).toThrow(TemplateBudgetError);
    expect(render(`${MEGA}{{ s|length }}`)).toBe(String(2 ** 20));
    expect(renderChat(hi)).toBe('hi');
  });

  it('is refused when saved, tried on a sample conversation; a template that only fails on it is not', () => {
    expect(chatTemplateError('{{ range(20000000)|length }}')).toMatch(/range\(\) of 20000000 numbers.*conversation/);
    expect(chatTemplateError("{{ raise_exception('only tools') }}")).toBeUndefined();
    expect(chatTemplateError('{{ messages[0].content }}')).toBeUndefined();
  });

  it('outside a budgeted render, the library is unchanged (its own range, no limits)', () => {
    expect(new Template('{{ range(300000)|length }}').render({})).toBe('300000');
  });
});

// Templates in the style of the families that ship them: ChatML, Llama 3 and Qwen 3 (loops,
// namespace, slicing, string methods, filters, tojson of tools).
const CHATML =
  "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + " +
  "'<|im_end|>' + '\\n'}}" +
  "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}";

const LLAMA3 =
  "{{- bos_token|default('<|begin_of_text|>') }}{%- if messages[0]['role'] == 'system' %}" +
  "{%- set system_message = messages[0]['content']|trim %}{%- set messages = messages[1:] %}" +
  "{%- else %}{%- set system_message = '' %}{%- endif %}" +
  "{%- if strftime_now is defined %}{%- set date_string = '26 Jul 2024' %}{%- endif %}" +
  "{{- '<|start_header_id|>system<|end_header_id|>\\n\\n' }}{{- 'Cutting Knowledge Date: December 2023\\n' }}" +
  "{{- system_message }}{{- '<|eot_id|>' }}{%- for message in messages %}" +
  "{{- '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n' + " +
  "message['content'] | trim + '<|eot_id|>' }}" +
  '{%- endfor %}{%- if add_generation_prompt %}' +
  "{{- '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}{%- endif %}";

const QWEN3 = `{%- set tools = [{"type": "function",
    "function": {"name": "get_weather", "parameters": {"type": "object"}}}] %}
{%- if tools %}
    {{- '<|im_start|>system\\n' }}
    {%- if messages[0].role == 'system' %}
        {{- messages[0].content + '\\n\\n' }}
    {%- endif %}
    {{- "# Tools\\n\\n<tools>" }}
    {%- for tool in tools %}
        {{- "\\n" }}
        {{- tool | tojson }}
    {%- endfor %}
    {{- "\\n</tools><|im_end|>\\n" }}
{%- endif %}
{%- set ns = namespace(multi_step_tool=true, last_query_index=messages|length - 1) %}
{%- for message in messages[::-1] %}
    {%- set index = (messages|length - 1) - loop.index0 %}
    {%- if ns.multi_step_tool and message.role == "user" and not(message.content.startswith('<tool_response>')) %}
        {%- set ns.multi_step_tool = false %}
        {%- set ns.last_query_index = index %}
    {%- endif %}
{%- endfor %}
{%- for message in messages %}
    {%- if message.role == "user" or (message.role == "system" and not loop.first) %}
        {{- '<|im_start|>' + message.role + '\\n' + message.content + '<|im_end|>' + '\\n' }}
    {%- elif message.role == "assistant" %}
        {%- set content = message.content %}
        {%- set reasoning_content = '' %}
        {%- if '</think>' in message.content %}
            {%- set content = message.content.split('</think>')[-1].lstrip('\\n') %}
            {%- set reasoning_content = message.content.split('</think>')[0].rstrip('\\n')
                .split('<think>')[-1].lstrip('\\n') %}
        {%- endif %}
        {%- if loop.index0 > ns.last_query_index and (loop.last or reasoning_content) %}
            {{- '<|im_start|>' + message.role + '\\n<think>\\n' + reasoning_content.strip('\\n') +
                '\\n</think>\\n\\n' + content.lstrip('\\n') }}
        {%- else %}
            {{- '<|im_start|>' + message.role + '\\n' + content }}
        {%- endif %}
        {{- '<|im_end|>\\n' }}
    {%- endif %}
{%- endfor %}
{%- if add_generation_prompt %}
    {{- '<|im_start|>assistant\\n' }}
{%- endif %}`;

const conversation: ChatMessage[] = [
  { role: 'system', content: 'You are a helpful assistant.' },
  { role: 'user', content: 'What is the weather in Paris?' },
  { role: 'assistant', content: '<think>\nThe user asks about weather.\n</think>\n\nLet me check.' },
  {
    role: 'user',
    content: [
      { type: 'text', text: 'Thanks! ' },
      { type: 'text', text: 'And tomorrow?' },
    ],
  },
];

/** The library's own render, with no budget: what a template means. */
const plain = (template: string, messages: ChatMessage[]) =>
  new Template(template).render({
    messages: messages.map((m) => ({
      role: m.role,
      content: typeof m.content === 'string' ? m.content : m.content.map((p) => p.text).join(''),
    })),
    task_tokens: [],
    add_generation_prompt: true,
  });

describe('ordinary chat templates render exactly as without the budget', () => {
  it.each([
    ['ChatML', CHATML],
    ['Llama 3', LLAMA3],
    ['Qwen 3', QWEN3],
  ])('%s', (_, template) => {
    const text = render(template, conversation);
    expect(text).toBe(plain(template, conversation));
    expect(text.length).toBeGreaterThan(100);
  });

  it('with the largest conversation a request can carry (about 1 MiB of text)', () => {
    const big: ChatMessage[] = Array.from({ length: 40 }, (_, i) => ({
      role: i % 2 ? 'assistant' : 'user',
      content: `<think>\nstep ${i}\n</think>\n\n` + 'Lorem ipsum dolor sit amet, consectetur.\n'.repeat(650),
    }));
    expect(big.reduce((n, m) => n + (m.content as string).length, 0)).toBeGreaterThan(1_000_000);
    for (const template of [CHATML, LLAMA3, QWEN3]) expect(render(template, big)).toBe(plain(template, big));
  });
});
