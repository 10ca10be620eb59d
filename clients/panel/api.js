/**
 * RunPod client for the After Effects image-to-3D panel: a drop-in for the
 * panel's shipped client/js/api.js (same global class, constructor, methods
 * and result fields), for this project's worker.
 *
 * What it adds over the shipped client:
 * - onProgress receives the worker's stage progress:
 *   {status, stage, progress, message, attempts, maxAttempts, elapsedMs};
 * - a model_url result (bucket upload) is downloaded into model_base64, so
 *   the panel's saver works unchanged;
 * - it waits as long as the job really runs (maxWaitMs, 15 minutes by
 *   default, then cancels the job), not 90 polls (3 minutes);
 * - transient poll failures (network errors, HTTP 429 and 5xx) are retried
 *   with exponential backoff;
 * - every documented request field can be given in options (camelCase or
 *   the worker's snake_case names), and the result carries warnings.
 *
 * Runs in CEP's Chromium (with or without Node) and in Node 18+: it uses
 * fetch and nothing else. Syntax is kept to what Chromium 88 (CEP 11) runs.
 */
'use strict';

// Request fields of the worker (README, "Request fields"), by the option names the panel may use.
const RUNPOD_OPTION_FIELDS = {
  generateTexture: 'generate_texture',
  removeBackground: 'remove_background',
  profile: 'profile',
  seed: 'seed',
  model: 'model',
  maxFaces: 'max_faces',
  steps: 'steps',
  guidanceScale: 'guidance_scale',
  octreeResolution: 'octree_resolution',
  numChunks: 'num_chunks',
  textureSize: 'texture_size',
  paintModel: 'paint_model',
  smoothNormals: 'smooth_normals',
  output: 'output',
  preview: 'preview',
  imageUrl: 'image_url',
};
const RUNPOD_STAGES = ['decode', 'background', 'shape', 'texture', 'export'];
const RUNPOD_TRANSIENT_HTTP = [408, 425, 429, 500, 502, 503, 504];

class RunPodAPIClient {
  /**
   * @param {string} apiKey RunPod API key.
   * @param {string} endpointId Serverless endpoint id.
   * @param {object} [config] Optional: baseURL, pollInterval (ms), maxWaitMs,
   *   requestTimeoutMs, maxRetries, retryBaseMs, retryMaxMs, fetch.
   */
  constructor(apiKey, endpointId, config) {
    const c = config || {};
    this.apiKey = apiKey;
    this.endpointId = endpointId;
    this.baseURL = c.baseURL || 'https://api.runpod.ai/v2';
    this.pollInterval = c.pollInterval != null ? c.pollInterval : 2000;
    this.maxWaitMs = c.maxWaitMs != null ? c.maxWaitMs : 15 * 60 * 1000;
    this.requestTimeoutMs = c.requestTimeoutMs != null ? c.requestTimeoutMs : 60 * 1000;
    this.maxRetries = c.maxRetries != null ? c.maxRetries : 6;
    this.retryBaseMs = c.retryBaseMs != null ? c.retryBaseMs : 1000;
    this.retryMaxMs = c.retryMaxMs != null ? c.retryMaxMs : 30000;
    this._fetch = c.fetch || ((url, init) => fetch(url, init));
    this.currentJobId = null;
  }

  /** Polls that fit in maxWaitMs; reported as maxAttempts, as the shipped client does. */
  get maxPollAttempts() {
    return Math.max(1, Math.ceil(this.maxWaitMs / Math.max(1, this.pollInterval)));
  }

  _url(path) {
    return `${this.baseURL.replace(/\/+$/, '')}/${this.endpointId}/${path}`;
  }

  _headers() {
    return { 'Content-Type': 'application/json', Authorization: `Bearer ${this.apiKey}` };
  }

  _sleep(ms) {
    return new Promise((resolve) => setTimeout(resolve, ms));
  }

  /** fetch with a timeout; resolves to the Response, rejects on network failure or timeout. */
  async _request(url, init, timeoutMs) {
    const limit = timeoutMs || this.requestTimeoutMs;
    const options = Object.assign({}, init);
    let timer = null;
    if (typeof AbortSignal !== 'undefined' && typeof AbortSignal.timeout === 'function') {
      options.signal = AbortSignal.timeout(limit);
    } else if (typeof AbortController !== 'undefined') {
      const controller = new AbortController();
      timer = setTimeout(() => controller.abort(), limit);
      options.signal = controller.signal;
    }
    try {
      return await this._fetch(url, options);
    } finally {
      if (timer !== null) clearTimeout(timer);
    }
  }

  async _json(response) {
    const text = await response.text();
    try {
      return text ? JSON.parse(text) : {};
    } catch (e) {
      return { error: text.slice(0, 200) };
    }
  }

  _httpError(response, body) {
    if (response.status === 401) return new Error('Invalid API key');
    if (response.status === 404) return new Error('Endpoint not found');
    const detail = body && (body.error || body.message);
    return new Error(`RunPod answered HTTP ${response.status}${detail ? `: ${detail}` : ''}`);
  }

  /** GET /health. Resolves to {success, message, workers, jobs} or {success: false, error}. */
  async testConnection() {
    try {
      const response = await this._request(this._url('health'), { method: 'GET', headers: this._headers() });
      const body = await this._json(response);
      if (!response.ok) return { success: false, error: this._httpError(response, body).message };
      return { success: true, message: 'Connected to RunPod endpoint', workers: body.workers, jobs: body.jobs };
    } catch (error) {
      return { success: false, error: `Cannot reach RunPod: ${error.message}` };
    }
  }

  /** The worker's input: image (or image_url) plus every known option that is set. */
  buildInput(imageBase64, options) {
    const input = {};
    const opts = options || {};
    Object.keys(RUNPOD_OPTION_FIELDS).forEach((name) => {
      const field = RUNPOD_OPTION_FIELDS[name];
      const value = opts[name] !== undefined ? opts[name] : opts[field];
      if (value !== undefined) input[field] = value;
    });
    if (imageBase64 && input.image_url === undefined) {
      // The panel reads files as data URLs sometimes; the worker accepts the prefix too.
      input.image = imageBase64;
    }
    return input;
  }

  /**
   * Run one job: POST /run, poll GET /status/{id} until it ends.
   * Resolves to {success: true, model_base64, file_size, format, textured,
   * execution_time, warnings, ...the rest of the worker's output}; rejects
   * with an Error whose message is the worker's sentence when the job fails,
   * is cancelled, times out, or outlasts maxWaitMs (it is then cancelled).
   */
  async generate3D(imageBase64, options, onProgress) {
    const report = typeof onProgress === 'function' ? onProgress : () => {};
    const input = this.buildInput(imageBase64, options);
    const submitted = await this._request(this._url('run'), {
      method: 'POST',
      headers: this._headers(),
      body: JSON.stringify({ input }),
    });
    const job = await this._json(submitted);
    if (!submitted.ok) throw this._httpError(submitted, job);
    if (!job.id) throw new Error('RunPod did not return a job id');
    this.currentJobId = job.id;
    try {
      const output = await this._poll(job.id, report);
      return await this._result(output, job.id);
    } finally {
      if (this.currentJobId === job.id) this.currentJobId = null;
    }
  }

  async _poll(jobId, report) {
    const started = Date.now();
    const maxAttempts = this.maxPollAttempts;
    let attempts = 0;
    let failures = 0;
    for (;;) {
      const elapsedMs = Date.now() - started;
      if (elapsedMs >= this.maxWaitMs) {
        await this.cancelJob(jobId).catch(() => null);
        const minutes = Math.round(this.maxWaitMs / 60000 * 10) / 10;
        throw new Error(`Job ${jobId} did not finish within ${minutes} minutes (maxWaitMs) and was cancelled`);
      }
      await this._sleep(this.pollInterval);
      attempts += 1;
      let data;
      try {
        const response = await this._request(this._url(`status/${jobId}`), { method: 'GET', headers: this._headers() });
        data = await this._json(response);
        if (!response.ok) {
          const error = this._httpError(response, data);
          error.transient = RUNPOD_TRANSIENT_HTTP.indexOf(response.status) >= 0;
          throw error;
        }
      } catch (error) {
        // A network error (TypeError from fetch, AbortError on timeout) or a 429/5xx is worth retrying.
        const transient = error.transient !== false && (error.transient || error.name === 'TypeError' ||
          error.name === 'AbortError' || error.name === 'TimeoutError');
        if (!transient || failures >= this.maxRetries) throw error;
        failures += 1;
        const backoff = Math.min(this.retryMaxMs, this.retryBaseMs * Math.pow(2, failures - 1));
        await this._sleep(backoff);
        continue;
      }
      failures = 0;
      const status = data.status;
      if (status === 'COMPLETED') {
        const output = data.output;
        if (!output || typeof output !== 'object') {
          throw new Error('RunPod reports the job COMPLETED but returned no output (a result over its payload cap?)');
        }
        if (output.error) throw new Error(String(output.error));
        report({ status, stage: 'done', progress: 1, message: 'Completed', attempts, maxAttempts, elapsedMs });
        return output;
      }
      if (status === 'FAILED') throw new Error(RunPodAPIClient.errorText(data.error));
      if (status === 'CANCELLED') throw new Error('Job was cancelled');
      if (status === 'TIMED_OUT') throw new Error("Job timed out on RunPod (the endpoint's execution timeout)");
      report(RunPodAPIClient.progressOf(data, attempts, maxAttempts, Date.now() - started));
    }
  }

  /** The onProgress payload for an IN_QUEUE / IN_PROGRESS status. */
  static progressOf(data, attempts, maxAttempts, elapsedMs) {
    const update = data.output && typeof data.output === 'object' ? data.output : {};
    const stage = typeof update.stage === 'string' ? update.stage : (data.status === 'IN_QUEUE' ? 'queue' : 'starting');
    const fraction = Number(update.progress);
    const progress = isFinite(fraction) ? Math.min(Math.max(fraction, 0), 1) : 0;
    const index = RUNPOD_STAGES.indexOf(stage);
    const message = typeof update.message === 'string' ? update.message
      : (data.status === 'IN_QUEUE' ? 'Waiting for a worker' : 'Running');
    return {
      status: data.status, stage, progress, message, attempts, maxAttempts, elapsedMs,
      overall: index >= 0 ? (index + progress) / RUNPOD_STAGES.length : 0,
    };
  }

  /** A FAILED job's error as one sentence (a raised exception arrives as JSON with a traceback). */
  static errorText(error) {
    if (!error) return 'Job failed';
    if (typeof error === 'string') {
      try {
        const parsed = JSON.parse(error);
        if (parsed && parsed.error_message) return String(parsed.error_message);
      } catch (e) {
        // a plain sentence, as this project's worker sends
      }
      return error;
    }
    return String(error.error_message || error.message || JSON.stringify(error));
  }

  async _result(output, jobId) {
    let modelBase64 = output.model_base64;
    if (typeof modelBase64 !== 'string' && typeof output.model_url === 'string') {
      modelBase64 = await this.downloadFile(output.model_url);
    }
    if (typeof modelBase64 !== 'string') throw new Error('No model data in response');
    const result = Object.assign({}, output, {
      success: true,
      job_id: jobId,
      model_base64: modelBase64,
      file_size: output.file_size,
      format: output.format || 'glb',
      textured: Boolean(output.textured),
      execution_time: output.execution_time,
      warnings: Array.isArray(output.warnings) ? output.warnings : [],
    });
    return result;
  }

  /** Download a URL (the worker's presigned model_url) and return it as base64. */
  async downloadFile(url) {
    const response = await this._request(url, { method: 'GET' });
    if (!response.ok) throw new Error(`Downloading the model failed: HTTP ${response.status}`);
    return RunPodAPIClient.toBase64(await response.arrayBuffer());
  }

  static toBase64(arrayBuffer) {
    if (typeof Buffer !== 'undefined') return Buffer.from(arrayBuffer).toString('base64');
    const bytes = new Uint8Array(arrayBuffer);
    let binary = '';
    for (let i = 0; i < bytes.length; i += 0x8000) {
      binary += String.fromCharCode.apply(null, bytes.subarray(i, i + 0x8000));
    }
    return btoa(binary);
  }

  /** Cancel the job generate3D is waiting for; resolves to false when there is none. */
  async cancelCurrentJob() {
    if (!this.currentJobId) return false;
    return this.cancelJob(this.currentJobId);
  }

  /** POST /cancel/{id}; resolves to RunPod's answer ({id, status}). */
  async cancelJob(jobId) {
    const response = await this._request(this._url(`cancel/${jobId}`), { method: 'POST', headers: this._headers() });
    const body = await this._json(response);
    if (!response.ok) throw this._httpError(response, body);
    return body;
  }
}

if (typeof module !== 'undefined' && module.exports) {
  module.exports = { RunPodAPIClient };
}
