// Node's built-in test runner against loopback RunPod stand-ins with the real
// worker handler behind them. tests/test_panel_client.py starts the stand-ins
// (fakes/fake_runpod.py) and a moto S3 bucket, then runs
// `node --test clients/panel/test/` with PANEL_TEST_CONFIG describing them.
'use strict';

const { test, mock } = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const { performance } = require('node:perf_hooks');

const { RunPodAPIClient } = require(path.join(__dirname, '..', 'api.js'));

const config = JSON.parse(process.env.PANEL_TEST_CONFIG || 'null');
const skip = config ? false : 'PANEL_TEST_CONFIG is unset: run through tests/test_panel_client.py';
const image = config ? fs.readFileSync(config.image_path).toString('base64') : '';
const STAGES = ['decode', 'background', 'shape', 'texture', 'export'];

function client(name, extra) {
  const fake = config[name];
  return new RunPodAPIClient(fake.api_key, fake.endpoint_id, Object.assign({ baseURL: fake.base_url }, extra));
}

function glb(result) {
  const bytes = Buffer.from(result.model_base64, 'base64');
  assert.equal(bytes.subarray(0, 4).toString('latin1'), 'glTF');
  assert.equal(bytes.length, result.file_size);
  return bytes;
}

test('testConnection: ok, wrong key, wrong endpoint', { skip }, async () => {
  const ok = await client('main').testConnection();
  assert.equal(ok.success, true);
  assert.ok(ok.workers && ok.jobs);
  const fake = config.main;
  const badKey = new RunPodAPIClient('wrong', fake.endpoint_id, { baseURL: fake.base_url });
  assert.deepEqual(await badKey.testConnection(), { success: false, error: 'Invalid API key' });
  const badEndpoint = new RunPodAPIClient(fake.api_key, 'nope', { baseURL: fake.base_url });
  assert.deepEqual(await badEndpoint.testConnection(), { success: false, error: 'Endpoint not found' });
});

test('buildInput passes every documented field, camelCase or snake_case', { skip }, () => {
  const c = new RunPodAPIClient('k', 'e');
  const input = c.buildInput('AAAA', {
    generateTexture: false, removeBackground: true, profile: 4, seed: 9, model: 'draft', maxFaces: 3000,
    steps: 5, guidanceScale: 4.5, octreeResolution: 128, numChunks: 9000, textureSize: 1024,
    paintModel: 'hunyuan3d-paint-v2-0-turbo', smooth_normals: false, output: 'inline', preview: true,
    panelOnlySetting: 'ignored',
  });
  assert.deepEqual(input, {
    image: 'AAAA', generate_texture: false, remove_background: true, profile: 4, seed: 9, model: 'draft',
    max_faces: 3000, steps: 5, guidance_scale: 4.5, octree_resolution: 128, num_chunks: 9000, texture_size: 1024,
    paint_model: 'hunyuan3d-paint-v2-0-turbo', smooth_normals: false, output: 'inline', preview: true,
  });
  assert.deepEqual(c.buildInput(null, { imageUrl: 'https://example.com/a.png' }), {
    image_url: 'https://example.com/a.png',
  });
});

test('a textured draft job: stage progress, GLB inline, warnings, preview', { skip }, async () => {
  const updates = [];
  const result = await client('main', { pollInterval: 20 }).generate3D(
    image,
    { generateTexture: true, removeBackground: false, model: 'draft', maxFaces: 5000, seed: 7, preview: true },
    (update) => updates.push(update),
  );
  assert.equal(result.success, true);
  assert.equal(result.textured, true);
  assert.equal(result.format, 'glb');
  assert.equal(result.output, 'inline');
  assert.equal(result.seed, 7);
  assert.ok(result.faces <= 5000);
  assert.ok(typeof result.execution_time === 'number');
  assert.ok(Array.isArray(result.warnings));
  assert.ok(result.preview_png_base64.startsWith('iVBORw0KGgo'));
  glb(result);
  const staged = updates.filter((u) => u.status === 'IN_PROGRESS' && STAGES.includes(u.stage));
  assert.ok(staged.length >= 2, JSON.stringify(updates));
  for (const u of staged) {
    assert.ok(u.progress >= 0 && u.progress <= 1 && typeof u.message === 'string');
    assert.ok(u.attempts >= 1 && u.maxAttempts === Math.ceil(15 * 60 * 1000 / 20));
  }
  assert.ok(new Set(staged.map((u) => u.stage)).size >= 2, 'more than one stage was seen');
  assert.ok(updates.every((u, i) => i === 0 || u.attempts >= updates[i - 1].attempts));
});

test('a model_url result from the bucket is downloaded into model_base64', { skip }, async () => {
  const result = await client('main', { pollInterval: 20 }).generate3D(
    image, { removeBackground: false, model: 'draft', maxFaces: 3000, output: 'url' },
  );
  assert.equal(result.output, 'url');
  assert.ok(result.model_url.startsWith(config.bucket_endpoint));
  glb(result);
});

test('a failed job rejects with the worker\'s sentence', { skip }, async () => {
  await assert.rejects(
    client('main', { pollInterval: 20 }).generate3D(image, { model: 'draft', maxFaces: 10 }),
    (error) => /^Field 'max_faces' must be an integer from 1000 to 500000, got 10\.$/.test(error.message),
  );
});

test('transient poll errors are retried with backoff', { skip }, async () => {
  let statusCalls = 0;
  const flaky = (url, init) => {
    if (url.includes('/status/')) {
      statusCalls += 1;
      if (statusCalls === 1) return Promise.reject(new TypeError('fetch failed'));
      if (statusCalls === 2) return Promise.resolve(new Response('{"error":"busy"}', { status: 503 }));
    }
    return fetch(url, init);
  };
  const result = await client('main', { pollInterval: 20, retryBaseMs: 10, fetch: flaky }).generate3D(
    image, { removeBackground: false, model: 'draft', maxFaces: 2000, generateTexture: false },
  );
  assert.equal(result.success, true);
  assert.ok(statusCalls >= 3);
  glb(result);
});

test('a permanent poll error is not retried', { skip }, async () => {
  let statusCalls = 0;
  const forbidden = (url, init) => {
    if (url.includes('/status/')) {
      statusCalls += 1;
      return Promise.resolve(new Response('{"error":"Unauthorized"}', { status: 401 }));
    }
    return fetch(url, init);
  };
  await assert.rejects(
    client('idle', { pollInterval: 20, fetch: forbidden }).generate3D(image, { model: 'draft' }),
    /Invalid API key/,
  );
  assert.equal(statusCalls, 1);
});

test('cancelCurrentJob cancels the job generate3D waits for', { skip }, async () => {
  const c = client('idle', { pollInterval: 20 }); // no worker: the job stays IN_QUEUE
  let cancelled = null;
  const running = c.generate3D(image, { model: 'draft' }, (update) => {
    if (update.status === 'IN_QUEUE' && cancelled === null) {
      assert.equal(update.stage, 'queue');
      cancelled = c.cancelCurrentJob();
    }
  });
  await assert.rejects(running, /^Error: Job was cancelled$/);
  assert.equal((await cancelled).status, 'CANCELLED');
  assert.equal(c.currentJobId, null);
  assert.equal(await c.cancelCurrentJob(), false);
});

// -- simulated time ----------------------------------------------------------------
/** Run `start()` under fake timers, advancing the clock by `step` whenever the
 * client sleeps, with a little real time between steps for the loopback I/O. */
async function underFakeTimers(step, start) {
  mock.timers.enable({ apis: ['setTimeout', 'Date'], now: 0 });
  const mocked = globalThis.setTimeout;
  let sleeping = 0;
  globalThis.setTimeout = (fn, ms, ...args) => {
    if (ms !== step) return mocked(fn, ms, ...args); // fetch's own timers are not the client's sleep
    sleeping += 1;
    return mocked(() => { sleeping -= 1; fn(...args); }, ms);
  };
  try {
    let settled = false;
    const promise = start();
    promise.then(() => { settled = true; }, () => { settled = true; });
    const realDeadline = performance.now() + 120000;
    while (!settled && performance.now() < realDeadline) {
      const until = performance.now() + 15;
      while (performance.now() < until && !settled) await new Promise((resolve) => setImmediate(resolve));
      if (sleeping > 0) mock.timers.tick(step);
    }
    return await promise;
  } finally {
    globalThis.setTimeout = mocked;
    mock.timers.reset();
  }
}

test('a job outlasting 3 minutes of simulated time completes (the shipped client gave up at 90 polls)', { skip },
  async () => {
    const c = client('long'); // the shipped defaults: a poll every 2 s
    assert.equal(c.pollInterval, 2000);
    const updates = [];
    const result = await underFakeTimers(2000, () => c.generate3D(
      image, { removeBackground: false, model: 'draft', maxFaces: 2000, generateTexture: false },
      (update) => updates.push(update),
    ));
    glb(result);
    const last = updates[updates.length - 1];
    assert.ok(last.attempts > 90, `only ${last.attempts} polls`);
    assert.ok(last.elapsedMs > 3 * 60 * 1000, `only ${last.elapsedMs} ms of simulated time`);
    assert.ok(last.elapsedMs < 15 * 60 * 1000);
  });

test('a job outlasting maxWaitMs is cancelled with a clear error', { skip }, async () => {
  const c = client('idle', { maxWaitMs: 60 * 1000 });
  let jobId = null;
  await assert.rejects(
    underFakeTimers(2000, () => c.generate3D(image, { model: 'draft' }, () => { jobId = jobId || c.currentJobId; })),
    /did not finish within 1 minutes \(maxWaitMs\) and was cancelled$/,
  );
  const status = await (await fetch(`${config.idle.base_url}/${config.idle.endpoint_id}/status/${jobId}`, {
    headers: { Authorization: `Bearer ${config.idle.api_key}` },
  })).json();
  assert.equal(status.status, 'CANCELLED');
});
