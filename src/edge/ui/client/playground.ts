/**
 * Browser module `/ui/assets/playground.js`: stream a completion for any model string, show which
 * version, experiment and arm served it (response headers), and score it (POST /v1/feedback).
 * "Preview prompt" shows what the chat template renders and its token count (POST /v1/tokenize)
 * without generating.
 */
import { api, streamCompletion, type Json } from './api.ts';
import {
  act,
  clearError,
  enc,
  errorBox,
  field,
  h,
  plural,
  replace,
  showError,
  statusLine,
  type Child,
  type ViewContext,
} from './dom.ts';

const UNIT_KEY = 'versa.playgroundUnit';

// One unit per browser tab by default, so the playground behaves like one user of an experiment.
function defaultUnit(): string {
  let unit = sessionStorage.getItem(UNIT_KEY);
  if (!unit) {
    unit = `playground-${Math.random().toString(36).slice(2, 10)}`;
    sessionStorage.setItem(UNIT_KEY, unit);
  }
  return unit;
}

export function playgroundView({ signal, params }: ViewContext): HTMLElement {
  const err = errorBox();
  const models = h('datalist', { id: 'pg-models' });
  const model = h('input', {
    type: 'text',
    name: 'model',
    required: true,
    list: 'pg-models',
    value: params.get('model') || '',
    autocomplete: 'off',
    testid: 'pg-model',
  });
  const endpoint = h(
    'select',
    { name: 'endpoint', testid: 'pg-endpoint' },
    h('option', { value: 'chat' }, 'Chat (/v1/chat/completions)'),
    h('option', { value: 'text' }, 'Completion (/v1/completions)'),
  );
  const prompt = h('textarea', { name: 'prompt', rows: 4, required: true, testid: 'pg-prompt' }, 'Once upon a time');
  const maxTokens = h('input', {
    type: 'number',
    name: 'max_tokens',
    min: 1,
    value: 48,
    required: true,
    testid: 'pg-max-tokens',
  });
  const temperature = h('input', {
    type: 'number',
    name: 'temperature',
    min: 0,
    max: 2,
    step: 0.1,
    value: 0.8,
    required: true,
    testid: 'pg-temperature',
  });
  const unit = h('input', { type: 'text', name: 'user', value: defaultUnit(), maxlength: 256, testid: 'pg-unit' });
  const newUnit = h(
    'button',
    {
      type: 'button',
      onclick: () => {
        sessionStorage.removeItem(UNIT_KEY);
        unit.value = defaultUnit();
      },
    },
    'New unit',
  );
  const streamButton = h('button', { type: 'submit', testid: 'pg-stream' }, 'Stream');
  const stopButton = h('button', { type: 'button', disabled: true, testid: 'pg-stop' }, 'Stop');
  const previewButton = h('button', { type: 'button', testid: 'pg-preview-button' }, 'Preview prompt');
  const previewStats = statusLine('pg-preview-stats');
  const preview = h('pre', { class: 'output', hidden: true, testid: 'pg-preview' });
  const output = h('pre', { class: 'output', 'aria-live': 'polite', testid: 'pg-output' });
  const stats = statusLine('pg-stats');
  const served = h('dl', { class: 'facts', testid: 'pg-served' });
  const feedbackStatus = statusLine('pg-feedback-status');
  const feedbackErr = errorBox();
  const up = h(
    'button',
    { type: 'button', disabled: true, testid: 'pg-thumbs-up' },
    h('span', { 'aria-hidden': 'true' }, '👍 '),
    'Good',
  );
  const down = h(
    'button',
    { type: 'button', disabled: true, testid: 'pg-thumbs-down' },
    h('span', { 'aria-hidden': 'true' }, '👎 '),
    'Bad',
  );
  let completionId: string | null = null;
  let running: AbortController | null = null;

  api('GET', '/v1/models')
    .then((list) => {
      const hint = (m: Json) => {
        if (m.kind === 'base') return 'base model';
        return `adapter on ${m.base || '?'}${m.version ? `, v${m.version}` : ''}`;
      };
      replace(
        models,
        list.data.map((m: Json) => h('option', { value: m.id }, hint(m))),
      );
      // Start on an adapter: that is what the playground is for.
      if (!model.value && list.data.length) {
        model.value = (list.data.find((m: Json) => m.kind === 'adapter') || list.data[0]).id;
      }
    })
    .catch((e) => showError(err, e));

  let scored = false;
  const score = (value: number) => async (e: MouseEvent) => {
    await act(e.currentTarget as HTMLButtonElement, feedbackErr, async () => {
      const r = await api('POST', '/v1/feedback', { completion_id: completionId, score: value });
      scored = true;
      const where = r.experiment ? ` (experiment ${r.experiment}, arm ${r.arm})` : '';
      replace(feedbackStatus, `Feedback ${r.score} recorded for ${r.completion_id}${where}.`);
    });
    // One score per completion: once it is recorded both buttons stay off.
    up.disabled = down.disabled = scored || !completionId;
  };
  up.addEventListener('click', score(1));
  down.addEventListener('click', score(0));
  stopButton.addEventListener('click', () => running && running.abort());
  // The prompt the model would get (a chat request's rendered template) and what it costs, without generating.
  previewButton.addEventListener('click', async (e) => {
    await act(e.currentTarget as HTMLButtonElement, err, async () => {
      const chat = endpoint.value === 'chat';
      const r = await api('POST', '/v1/tokenize', {
        model: model.value.trim(),
        ...(chat ? { messages: [{ role: 'user', content: prompt.value }] } : { prompt: prompt.value }),
      });
      replace(preview, chat ? r.prompt : prompt.value);
      preview.hidden = false;
      replace(previewStats, `${plural(r.count, 'prompt token')} of a context of ${r.max_model_len}.`);
    });
  });
  signal.addEventListener('abort', () => running && running.abort());

  function showServed(headers: Headers): void {
    const fact = (k: string, testid: string, ...v: Child[]) => served.append(h('dt', {}, k), h('dd', { testid }, v));
    const adapter = headers.get('x-versa-adapter');
    const experiment = headers.get('x-versa-experiment');
    served.replaceChildren();
    fact(
      'Served by',
      'pg-version',
      adapter
        ? h('a', { href: `#/adapters/${enc(adapter)}` }, `${adapter}@${headers.get('x-versa-adapter-version')}`)
        : `${headers.get('x-versa-base') || '–'} (base model, no adapter)`,
    );
    fact('Base', 'pg-base', headers.get('x-versa-base') || '–');
    if (headers.get('x-versa-resolved-via')) fact('Resolved via', 'pg-via', headers.get('x-versa-resolved-via'));
    fact(
      'Experiment',
      'pg-experiment',
      experiment ? h('a', { href: `#/experiment/${enc(experiment)}` }, experiment) : 'none',
    );
    fact('Arm', 'pg-arm', headers.get('x-versa-arm') || '–');
    if (headers.get('x-versa-warning')) fact('Warning', 'pg-warning', headers.get('x-versa-warning'));
  }

  const form = h(
    'form',
    {
      class: 'card',
      testid: 'pg-form',
      onsubmit: (e) => {
        e.preventDefault();
        if (running) return;
        run();
      },
    },
    field(
      'Model',
      model,
      'ADAPTER (its experiment, else alias production), ADAPTER@VERSION, ADAPTER@ALIAS or a base model',
    ),
    models,
    field('Endpoint', endpoint),
    field('Prompt', prompt),
    h(
      'div',
      { class: 'row' },
      field('Max tokens', maxTokens),
      field('Temperature', temperature),
      field('Experiment unit (user)', unit),
      newUnit,
    ),
    h('div', { class: 'row' }, streamButton, stopButton, previewButton),
  );

  async function run(): Promise<void> {
    clearError(err);
    clearError(feedbackErr);
    replace(feedbackStatus);
    output.replaceChildren();
    served.replaceChildren();
    completionId = null;
    scored = false;
    stats.removeAttribute('data-done');
    up.disabled = down.disabled = true;
    running = new AbortController();
    streamButton.disabled = true;
    stopButton.disabled = false;
    output.setAttribute('aria-busy', 'true');
    const chat = endpoint.value === 'chat';
    const body = {
      model: model.value.trim(),
      max_tokens: Number(maxTokens.value),
      temperature: Number(temperature.value),
      user: unit.value.trim() || undefined,
      stream_options: { include_usage: true },
      ...(chat ? { messages: [{ role: 'user', content: prompt.value }] } : { prompt: prompt.value }),
    };
    const started = performance.now();
    let chunks = 0;
    // Set from the stream's callbacks: typed with `as` so that the checker does not narrow them to null here.
    let first = null as number | null;
    let finish = null as string | null;
    let usage = null as { completion_tokens: number } | null;
    replace(stats, 'Waiting for the first token…');
    try {
      await streamCompletion(chat ? '/v1/chat/completions' : '/v1/completions', body, {
        signal: running.signal,
        onStart: showServed,
        onChunk: (chunk) => {
          completionId = chunk.id || completionId;
          if (chunk.usage) usage = chunk.usage;
          const choice = chunk.choices && chunk.choices[0];
          if (!choice) return;
          const text = chat ? choice.delta && choice.delta.content : choice.text;
          if (choice.finish_reason) finish = choice.finish_reason;
          if (!text) return;
          if (first === null) first = performance.now() - started;
          chunks++;
          output.append(text);
          output.setAttribute('data-chunks', String(chunks));
          replace(stats, `Streaming… ${plural(chunks, 'chunk')}`);
        },
      });
      const total = performance.now() - started;
      const produced = usage ? `${usage.completion_tokens} tokens` : `${chunks} chunks`;
      replace(
        stats,
        `Done: ${produced}, finish reason ${finish || '?'}, ` +
          `first token after ${Math.round(first || total)} ms, total ${Math.round(total)} ms.`,
      );
      stats.setAttribute('data-done', 'true');
      up.disabled = down.disabled = !completionId;
    } catch (e) {
      if ((e as Error).name === 'AbortError') replace(stats, `Stopped after ${chunks} chunks.`);
      else {
        replace(stats, 'Failed.');
        showError(err, e);
      }
    } finally {
      output.removeAttribute('aria-busy');
      if (completionId) {
        const id = h('dd', { testid: 'pg-completion-id' }, h('code', {}, completionId));
        served.append(h('dt', {}, 'Completion id'), id);
      }
      running = null;
      streamButton.disabled = false;
      stopButton.disabled = true;
    }
  }

  return h(
    'section',
    { testid: 'playground-view' },
    h('h1', {}, 'Playground'),
    form,
    err,
    previewStats,
    preview,
    h('h2', {}, 'Output'),
    stats,
    output,
    h('h2', {}, 'Served'),
    served,
    h('div', { class: 'row', role: 'group', 'aria-label': 'Rate this completion' }, up, down),
    feedbackErr,
    feedbackStatus,
  );
}
