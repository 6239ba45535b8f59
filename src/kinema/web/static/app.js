// kinema studio: plain JavaScript over /api. The token travels in an HttpOnly cookie;
// every write carries the X-Kinema header, which other sites' forms cannot send.
"use strict";

const WRITE = { "X-Kinema": "1" };

async function api(method, path, body) {
  const options = { method, headers: { ...WRITE }, credentials: "same-origin" };
  if (body instanceof FormData) options.body = body;
  else if (body !== undefined) {
    options.headers["Content-Type"] = "application/json";
    options.body = JSON.stringify(body);
  }
  const response = await fetch(path, options);
  if (response.status === 401) { location.href = "/login"; throw new Error("signed out"); }
  if (response.status === 204) return null;
  const data = await response.json().catch(() => ({}));
  if (!response.ok) throw Object.assign(new Error(message(data) || response.statusText), { status: response.status });
  return data;
}

function message(data) {
  if (typeof data.detail === "string") return data.detail;
  if (Array.isArray(data.detail)) return data.detail.map((d) => `${(d.loc || []).slice(-1)}: ${d.msg}`).join("; ");
  return "";
}

const $ = (selector, root = document) => root.querySelector(selector);
const fileUrl = (id) => `/api/jobs/${id}/file`;
const short = (text, n = 80) => (text.length > n ? text.slice(0, n - 1) + "…" : text);

// ------------------------------------------------------------------ studio

const studio = { offset: 0, limit: 12, timer: null, requests: 0, jobs: new Map(), model: null };
const GENERATED = ["t2v", "i2v", "keyframes"];

async function uploadImage(file) {
  const upload = new FormData();
  upload.append("file", file, file.name || "upload.png");
  return (await api("POST", "/api/uploads", upload)).id;
}

// ------------------------------------------------------------------ form status

// the status line under the form follows the last submitted job to its end; any other
// message (an upload, a publish, an error) replaces it, and the gallery keeps the progress
const follow = { generation: 0, timer: null };
const FINAL = ["done", "failed", "cancelled"];

function setStatus(text, error = false) {
  follow.generation++;
  clearTimeout(follow.timer);
  showStatus(text, error);
}

function showStatus(text, error = false, link = null) {
  const status = $("#form-status");
  status.textContent = text;
  status.classList.toggle("error", error);
  if (link) status.append(" · ", Object.assign(document.createElement("a"), link));
}

function showJobStatus(job, label) {
  const seed = `seed ${job.seed}`;
  if (job.status === "done") showStatus(`${label}done (${seed})`, false, { href: fileUrl(job.id), textContent: "open the take" });
  else if (job.status === "failed") showStatus(`${label}failed: ${job.error || "no reason given"}`, true);
  else if (job.status === "running" && job.progress.n) showStatus(`${label}running step ${job.progress.i}/${job.progress.n} (${seed})`);
  else showStatus(`${label}${job.status} (${seed})`);
}

function followJob(job, label = "") {
  // polled at the gallery's pace while the job is busy (1 s; 5 s after an error, such as a
  // 429), so a page following a job stays far below the read limit
  setStatus("");
  const generation = follow.generation;
  const poll = async () => {
    let current;
    try {
      current = await api("GET", `/api/jobs/${job.id}`);
    } catch (error) {
      if (generation !== follow.generation) return;
      if (error.status === 404) { showStatus(`${label}deleted (${job.id.slice(0, 6)})`); return; }
      follow.timer = setTimeout(poll, 5000);
      return;
    }
    if (generation !== follow.generation) return;  // a newer job or message took the line
    showJobStatus(current, label);
    if (!FINAL.includes(current.status)) follow.timer = setTimeout(poll, 1000);
  };
  showJobStatus(job, label);
  if (!FINAL.includes(job.status)) follow.timer = setTimeout(poll, 1000);
}

function showKind(form) {
  // an image is one frame: the options that only a clip has are hidden (and not sent)
  const still = form.elements.kind.value === "image";
  for (const label of form.querySelectorAll("[data-clip-only]")) label.hidden = still;
  // the motion brush, where the model has a branch for paths (a still has no motion)
  const controls = (studio.model && studio.model.controls) || [];
  $("#motion").hidden = still || !controls.includes("path");
  $("#reference").hidden = !controls.includes("reference");
  $("#fast").hidden = !(studio.model && studio.model.fast);
}

// ------------------------------------------------------------------ adapters

async function showAdapters() {
  // one strength slider per adapter on the server; 0 (the start) leaves it out
  const box = $("#adapters");
  let adapters = [];
  try {
    adapters = await api("GET", "/api/adapters");
  } catch (error) {
    return;  // the studio works without them
  }
  for (const adapter of adapters) {
    const label = document.createElement("label");
    label.title = `base ${adapter.base_model}, rank ${adapter.rank}${adapter.decoder_rank ? ` (decoder ${adapter.decoder_rank})` : ""}, ${adapter.steps} steps on ${adapter.clips} clips`;
    const slider = Object.assign(document.createElement("input"), { type: "range", min: "-2", max: "2", step: "0.1", value: "0" });
    slider.dataset.adapter = adapter.name;
    slider.setAttribute("aria-label", `strength of ${adapter.name}`);
    const shown = document.createElement("output");
    shown.textContent = "0";
    slider.addEventListener("input", () => { shown.textContent = slider.value; });
    label.append(`${adapter.name} `, slider, " ", shown);
    box.append(label);
  }
  box.hidden = adapters.length === 0;
}

function chosenAdapters() {
  return [...document.querySelectorAll("#adapters input[data-adapter]")]
    .map((slider) => ({ name: slider.dataset.adapter, scale: parseFloat(slider.value) }))
    .filter((adapter) => adapter.scale !== 0);
}

// ------------------------------------------------------------------ motion brush

// the stroke drawn on the first frame, in canvas units (0–1); sent as a path file
const brush = { stroke: [], drawing: false };

function brushPoint(event) {
  const box = $("#brush-path").getBoundingClientRect();
  const clamp = (v) => Math.min(1, Math.max(0, v));
  return [clamp((event.clientX - box.left) / box.width), clamp((event.clientY - box.top) / box.height)];
}

function drawBrush() {
  const canvas = $("#brush-path");
  const g = canvas.getContext("2d");
  g.clearRect(0, 0, canvas.width, canvas.height);
  if (!brush.stroke.length) return;
  const [w, h] = [canvas.width, canvas.height];
  g.strokeStyle = "#ffd84a"; g.lineWidth = 3; g.lineJoin = g.lineCap = "round";
  g.beginPath();
  brush.stroke.forEach(([x, y], i) => (i ? g.lineTo(x * w, y * h) : g.moveTo(x * w, y * h)));
  g.stroke();
  const [ex, ey] = brush.stroke[brush.stroke.length - 1];
  g.fillStyle = "#ffd84a"; g.beginPath(); g.arc(ex * w, ey * h, 6, 0, 2 * Math.PI); g.fill();
}

// the stroke as the path file's points: one a frame, at an even pace along the stroke
function brushPath(frames) {
  const stroke = brush.stroke;
  if (!stroke.length) return null;
  const round = (v) => Math.round(v * 1e4) / 1e4;
  const lengths = [0];
  for (let i = 1; i < stroke.length; i++) {
    lengths.push(lengths[i - 1] + Math.hypot(stroke[i][0] - stroke[i - 1][0], stroke[i][1] - stroke[i - 1][1]));
  }
  const total = lengths[lengths.length - 1];
  if (total === 0 || frames < 2) return { points: [[0, round(stroke[0][0]), round(stroke[0][1])]] };
  const points = [];
  let j = 0;
  for (let t = 0; t < frames; t++) {
    const at = (total * t) / (frames - 1);
    while (j < lengths.length - 2 && lengths[j + 1] < at) j++;
    const span = lengths[j + 1] - lengths[j] || 1;
    const u = Math.min(1, Math.max(0, (at - lengths[j]) / span));
    const [a, b] = [stroke[j], stroke[j + 1]];
    points.push([t, round(a[0] + (b[0] - a[0]) * u), round(a[1] + (b[1] - a[1]) * u)]);
  }
  return { points };
}

async function showFirstFrame(file) {
  const canvas = $("#brush-frame");
  const g = canvas.getContext("2d");
  g.clearRect(0, 0, canvas.width, canvas.height);
  if (!file || !file.size) return;
  const image = await createImageBitmap(file).catch(() => null);
  if (image) g.drawImage(image, 0, 0, canvas.width, canvas.height);
}

function initBrush(form) {
  const canvas = $("#brush-path");
  canvas.addEventListener("pointerdown", (e) => {
    brush.drawing = true;
    canvas.setPointerCapture(e.pointerId);
    brush.stroke = [brushPoint(e)];
    drawBrush();
  });
  canvas.addEventListener("pointermove", (e) => { if (brush.drawing) { brush.stroke.push(brushPoint(e)); drawBrush(); } });
  canvas.addEventListener("pointerup", () => { brush.drawing = false; });
  $("#brush-clear").addEventListener("click", () => { brush.stroke = []; drawBrush(); });
  form.elements.image.addEventListener("change", () => showFirstFrame(form.elements.image.files[0]));
  form.elements.control_scale.addEventListener("input", () => { $("#control-scale-value").textContent = form.elements.control_scale.value; });
}

async function submitJob(event) {
  event.preventDefault();
  const form = event.target;
  const fields = new FormData(form);
  const still = fields.get("kind") === "image";
  const body = { prompt: fields.get("prompt"), negative: fields.get("negative") || "" };
  if (still) body.still = true;
  else body.loop = fields.get("loop") === "on";
  if (fields.get("literal") === "on") body.literal = true;
  if (fields.get("fast") === "on") body.fast = true;
  for (const name of still ? ["seed", "steps"] : ["seed", "frames", "steps"]) {
    if (fields.get(name)) body[name] = parseInt(fields.get(name), 10);
  }
  if (fields.get("guidance")) body.guidance = parseFloat(fields.get("guidance"));
  if (fields.get("size")) body.size = fields.get("size");
  const adapters = chosenAdapters();
  if (adapters.length) body.adapters = adapters;
  try {
    const image = fields.get("image");
    const last = still ? null : fields.get("last_image");
    if (image && image.size) {
      setStatus("uploading the first image…");
      body.mode = "i2v";
      body.image = await uploadImage(image);
    }
    if (last && last.size) {
      setStatus("uploading the last image…");
      body.mode = "keyframes";
      body.last_image = await uploadImage(last);
    }
    const reference = fields.get("reference");
    if (!$("#reference").hidden && reference && reference.size) {
      setStatus("uploading the reference image…");
      body.reference = await uploadImage(reference);
    }
    if (!still && !$("#motion").hidden) {
      const frames = body.frames || (studio.model && studio.model.defaults.frames) || 16;
      const path = brushPath(frames);
      const control = fields.get("control_clip");
      if (path) {
        setStatus("sending the motion path…");
        body.path = await uploadImage(new File([JSON.stringify(path)], "brush.json", { type: "application/json" }));
      } else if (control && control.size) {
        setStatus("uploading the control clip…");
        body.control_clip = await uploadImage(control);
      }
      if (path || (control && control.size)) body.control_scale = parseFloat(fields.get("control_scale"));
    }
    const job = await api("POST", "/api/jobs", body);
    followJob(job);
    studio.offset = 0;
    refresh();
  } catch (error) {
    setStatus(error.message, true);
  }
}

const MODE_WORDS = {
  i2v: () => "from an image",
  keyframes: () => "first–last frame",
  extend: (p) => `extend ${p.backward ? "backward" : "forward"} +${p.frames} frames`,
  remix: (p) => `remix at ${p.strength}`,
  inpaint: () => "inpaint",
  outpaint: (p) => `outpaint ${p.outpaint.join(",")}`,
};

function describe(job) {
  const p = job.params;
  const mode = p.mode || "t2v";
  const words = [job.status];
  if (job.status === "running" && job.progress.n) words.push(`step ${job.progress.i}/${job.progress.n}`);
  if (job.review_status) words.push(`review: ${job.review_status}`);  // every take shows its review state
  if (p.still) words.push("image");
  if (MODE_WORDS[mode]) words.push(MODE_WORDS[mode](p));
  if (p.loop) words.push("loop");
  words.push(`seed ${p.seed}`);
  if (p.frames && mode !== "extend" && !p.still) words.push(`${p.frames} frames`);
  if (p.size) words.push(`${p.size[0]}×${p.size[1]}`);
  if (p.source) words.push(`of ${p.source.slice(0, 6)}`);
  if (p.source_clip) words.push("of your clip");
  if (job.error) words.push(job.error);
  return words.join(" · ");
}

function renderTake(job, old) {
  const node = old || $("#take").content.firstElementChild.cloneNode(true);
  node.dataset.id = job.id;
  node.dataset.status = job.status;
  $(".prompt", node).textContent = short(job.params.prompt, 140);
  // how the built-in model read the prompt: shown when it was given other words, and why
  const understood = $(".understood", node);
  const reworded = job.params.understood && job.params.understood !== job.params.prompt;
  understood.hidden = !reworded;
  understood.textContent = reworded ? `understood as: ${job.params.understood}` : "";
  const warning = $(".warning", node);
  warning.hidden = !(job.params.warnings || []).length;
  warning.textContent = (job.params.warnings || []).join("; ");
  $(".meta", node).textContent = describe(job);
  const fraction = job.status === "done" ? 1 : job.progress.n ? job.progress.i / job.progress.n : 0;
  $(".fill", node).style.width = `${Math.round(fraction * 100)}%`;
  $(".bar", node).hidden = job.status === "done";
  const still = Boolean(job.params.still);  // a still take is shown as an image
  node.dataset.kind = still ? "image" : "clip";
  showMedia(node, job.status === "done" ? fileUrl(job.id) : null, still, true);
  showPreview(node, job);
  const download = $('[data-act="download"]', node);
  download.hidden = job.status !== "done";
  download.href = `${fileUrl(job.id)}?download=true`;
  $('[data-act="cancel"]', node).hidden = !["queued", "running"].includes(job.status);
  $('[data-act="compare"]', node).hidden = job.status !== "done" || still;  // compare plays clips
  node.dataset.review = job.review_status || "";
  // only an approved take can be published (the review gate decides; the server refuses the rest)
  $('[data-act="publish"]', node).hidden = job.status !== "done" || job.review_status !== "approved";
  const modes = studio.model ? studio.model.modes : [];
  for (const button of node.querySelectorAll("[data-mode]")) {
    // every edit, and a loop, changes or makes a clip: none is offered on a still
    const mode = button.dataset.mode;
    const served = mode === "loop" ? studio.model && studio.model.loop : modes.includes(mode);
    button.hidden = job.status !== "done" || !served || still ||
      (mode === "loop" && (job.params.loop || !["t2v", "i2v"].includes(job.params.mode || "t2v")));
  }
  return node;
}

function showMedia(node, url, still, play = false) {
  // a take's file in its <video> (a clip, started when PLAY) or its <img> (a still); URL
  // null: not made yet
  const video = $("video", node);
  const image = $("img", node);
  video.hidden = !url || still;
  image.hidden = !url || !still;
  if (!url) return;
  if (still && !image.getAttribute("src")) image.src = url;
  if (!still && !video.getAttribute("src")) {
    video.src = url;
    if (play) video.play().catch(() => {});
  }
}

async function refresh() {
  clearTimeout(studio.timer);
  // the timer, a submit, an edit and the page buttons all refresh: only the latest request
  // draws the gallery and sets the next timer (an older answer may arrive after it)
  const request = ++studio.requests;
  let page;
  try {
    page = await api("GET", `/api/jobs?limit=${studio.limit}&offset=${studio.offset}`);
  } catch (error) {
    if (request !== studio.requests) return;
    showStatus(error.message, true);  // a follow keeps going: its next answer replaces this
    studio.timer = setTimeout(refresh, 5000);
    return;
  }
  if (request !== studio.requests) return;
  for (const job of page.items) studio.jobs.set(job.id, job);
  const gallery = $("#gallery");
  const existing = new Map([...gallery.children].map((n) => [n.dataset.id, n]));
  const nodes = page.items.map((job) => renderTake(job, existing.get(job.id)));
  gallery.replaceChildren(...nodes);
  if (!page.items.length) gallery.textContent = "No takes yet: write a prompt above.";
  const last = Math.min(page.total, studio.offset + page.items.length);
  $("#page-label").textContent = page.total ? `${studio.offset + 1}–${last} of ${page.total}` : "";
  $("#prev").disabled = studio.offset === 0;
  $("#next").disabled = last >= page.total;
  const busy = page.items.some((j) => ["queued", "running"].includes(j.status));
  studio.timer = setTimeout(refresh, busy ? 1000 : 5000);
}

async function takeAction(event) {
  const button = event.target.closest("[data-act]");
  if (!button || button.tagName === "A") return;
  const id = button.closest(".take").dataset.id;
  const act = button.dataset.act;
  try {
    if (act === "again") await api("POST", `/api/jobs/${id}/again`);
    if (act === "loop") await api("POST", "/api/jobs", loopOf(studio.jobs.get(id)));
    if (act === "publish") {
      // the review gate decides: a pending or rejected take is refused with the reason
      try {
        const published = await api("POST", `/api/jobs/${id}/publish`);
        setStatus(`published take ${id.slice(0, 6)}`);
        const link = Object.assign(document.createElement("a"), { href: published.url, download: "" });
        document.body.append(link);
        link.click();
        link.remove();
      } catch (error) {
        setStatus(error.message, true);
      }
      return;
    }
    if (["extend", "remix", "inpaint", "outpaint"].includes(act)) {
      openEdit(studio.jobs.get(id), act, $("video", button.closest(".take")));
      return;
    }
    if (act === "cancel") await api("POST", `/api/jobs/${id}/cancel`);
    if (act === "delete" && confirm("Delete this take and its file?")) await api("DELETE", `/api/jobs/${id}`);
    if (act === "compare") {
      const other = [...document.querySelectorAll('.take[data-status="done"][data-kind="clip"]')].map((n) => n.dataset.id).find((x) => x !== id);
      location.href = `/compare?a=${id}${other ? `&b=${other}` : ""}`;
      return;
    }
  } catch (error) {
    alert(error.message);
  }
  refresh();
}

function loopOf(job) {
  // the same prompt and seed made as a loop (the model's loop length: frames left out)
  const p = job.params;
  const body = { mode: p.mode === "i2v" ? "i2v" : "t2v", prompt: p.prompt, negative: p.negative || "", seed: p.seed, loop: true };
  if (p.literal) body.literal = true;
  if (p.fast) body.fast = true;
  for (const name of ["steps", "guidance", "fps", "image"]) if (p[name] !== null && p[name] !== undefined) body[name] = p[name];
  if (p.size) body.size = `${p.size[0]}x${p.size[1]}`;
  return body;
}

// ------------------------------------------------------------------ edits of a take

const edit = { job: null, painted: false, drawing: false };

function openEdit(job, mode, video) {
  // JOB is a take, or {clip, name, params} for an uploaded clip of the user's own
  const dialog = $("#edit");
  const form = $("#edit-form");
  edit.job = job;
  form.elements.mode.value = mode;
  form.elements.source.value = job.clip ? "" : job.id;
  form.elements.source_clip.value = job.clip || "";
  form.elements.prompt.value = job.params.prompt;
  const what = job.clip ? `clip ${job.name}` : `take ${job.id.slice(0, 6)}`;
  $("#edit-title").textContent = `${mode[0].toUpperCase()}${mode.slice(1)} ${what}`;
  $("#edit-status").textContent = "";
  $("#edit-status").classList.remove("error");
  for (const set of form.querySelectorAll("fieldset[data-for]")) {
    set.hidden = set.dataset.for !== mode;
    set.disabled = set.dataset.for !== mode;
  }
  if (mode === "inpaint") startPainter(video);
  dialog.showModal();
}

function startPainter(video) {
  const frame = $("#paint-frame");
  const mask = $("#paint-mask");
  const width = video.videoWidth || 64;
  const height = video.videoHeight || 64;
  for (const canvas of [frame, mask]) { canvas.width = width; canvas.height = height; }
  if (video.readyState >= 2) frame.getContext("2d").drawImage(video, 0, 0, width, height);
  mask.getContext("2d").clearRect(0, 0, width, height);
  edit.painted = false;
}

function paint(event) {
  const mask = $("#paint-mask");
  const rect = mask.getBoundingClientRect();
  const x = Math.floor(((event.clientX - rect.left) / rect.width) * mask.width);
  const y = Math.floor(((event.clientY - rect.top) / rect.height) * mask.height);
  const brush = parseInt($("#edit-form").elements.brush.value, 10);
  const context = mask.getContext("2d");
  context.fillStyle = "#fff";
  // whole pixels only: a mask must be pure black and white, never anti-aliased grey
  context.fillRect(x - Math.floor(brush / 2), y - Math.floor(brush / 2), brush, brush);
  edit.painted = true;
}

function maskBlob() {
  // the painted layer → an opaque PNG: white where painted, black elsewhere
  const mask = $("#paint-mask");
  const painted = mask.getContext("2d").getImageData(0, 0, mask.width, mask.height);
  const out = document.createElement("canvas");
  out.width = mask.width;
  out.height = mask.height;
  const context = out.getContext("2d");
  const pixels = context.createImageData(mask.width, mask.height);
  for (let i = 0; i < pixels.data.length; i += 4) {
    const value = painted.data[i + 3] > 0 ? 255 : 0;
    pixels.data.set([value, value, value, 255], i);
  }
  context.putImageData(pixels, 0, 0);
  return new Promise((resolve) => out.toBlob(resolve, "image/png"));
}

async function submitEdit(event) {
  event.preventDefault();
  const form = $("#edit-form");
  const fields = form.elements;
  const mode = fields.mode.value;
  const body = { mode, prompt: fields.prompt.value, negative: edit.job.params.negative || "" };
  if (fields.source_clip.value) body.source_clip = fields.source_clip.value;
  else body.source = fields.source.value;
  if (fields.seed.value) body.seed = parseInt(fields.seed.value, 10);
  if (fields.steps.value) body.steps = parseInt(fields.steps.value, 10);
  const adapters = chosenAdapters();
  if (adapters.length) body.adapters = adapters;
  const status = $("#edit-status");
  try {
    if (mode === "extend") { body.frames = parseInt(fields.frames.value, 10); body.backward = fields.backward.checked; }
    if (mode === "remix") body.strength = parseFloat(fields.strength.value);
    if (mode === "outpaint") body.outpaint = ["left", "top", "right", "bottom"].map((n) => parseInt(fields[n].value || "0", 10));
    if (mode === "inpaint") {
      const file = fields.mask_file.files[0];
      if (!file && !edit.painted) throw new Error("paint the region to regenerate, or upload a mask");
      status.textContent = "uploading the mask…";
      body.mask = await uploadImage(file || new File([await maskBlob()], "mask.png", { type: "image/png" }));
    }
    const job = await api("POST", "/api/jobs", body);
    followJob(job, `${mode} `);
    $("#edit").close();
    studio.offset = 0;
    refresh();
  } catch (error) {
    status.textContent = error.message;
    status.classList.add("error");
  }
}

async function editClip(event) {
  // upload a clip of the user's own, then edit it in the same dialog as a take
  event.preventDefault();
  const form = event.target;
  const file = form.elements.clip.files[0];
  if (!file) return;
  setStatus("uploading the clip…");
  try {
    const clip = await uploadImage(file);
    setStatus("");
    const video = document.createElement("video");
    video.muted = true;
    video.src = URL.createObjectURL(file);
    await new Promise((resolve) => { video.onloadeddata = resolve; video.onerror = resolve; });
    openEdit({ clip, name: file.name, params: { prompt: "", negative: "" } }, form.elements.mode.value, video);
  } catch (error) {
    setStatus(error.message, true);
  }
}

function initEdit() {
  $("#clip-form").addEventListener("submit", editClip);
  const form = $("#edit-form");
  form.addEventListener("submit", submitEdit);
  $("#edit-close").addEventListener("click", () => $("#edit").close());
  form.elements.strength.addEventListener("input", () => { $("#strength-value").textContent = form.elements.strength.value; });
  const mask = $("#paint-mask");
  mask.addEventListener("pointerdown", (e) => { edit.drawing = true; mask.setPointerCapture(e.pointerId); paint(e); });
  mask.addEventListener("pointermove", (e) => { if (edit.drawing) paint(e); });
  mask.addEventListener("pointerup", () => { edit.drawing = false; });
  $("#paint-clear").addEventListener("click", () => {
    mask.getContext("2d").clearRect(0, 0, mask.width, mask.height);
    edit.painted = false;
  });
}

async function initStudio() {
  try {
    studio.model = (await api("GET", "/api/me")).model;
  } catch (error) {
    setStatus(error.message, true);
  }
  initEdit();
  showAdapters();
  // a model that only generates (a diffusers one) edits nothing, uploaded clips included
  if (studio.model && !studio.model.modes.includes("extend")) $("#clip-edit").hidden = true;
  const form = $("#job-form");
  form.addEventListener("submit", submitJob);
  initBrush(form);
  form.elements.kind.addEventListener("change", () => showKind(form));
  showKind(form);  // a reloaded page may keep the last choice
  $("#gallery").addEventListener("click", takeAction);
  $("#prev").addEventListener("click", () => { studio.offset = Math.max(0, studio.offset - studio.limit); refresh(); });
  $("#next").addEventListener("click", () => { studio.offset += studio.limit; refresh(); });
  refresh();
}

// ------------------------------------------------------------------ compare

async function initCompare() {
  const params = new URLSearchParams(location.search);
  const done = await api("GET", "/api/jobs?status=done&limit=200");
  const page = { items: done.items.filter((j) => !j.params.still) };  // clips side by side
  const jobs = new Map(page.items.map((j) => [j.id, j]));
  for (const [side, wanted] of [["a", params.get("a")], ["b", params.get("b")]]) {
    const select = $(`#pick-${side}`);
    for (const job of page.items) select.add(new Option(`${short(job.params.prompt, 40)} (seed ${job.seed})`, job.id));
    if (wanted && jobs.has(wanted)) select.value = wanted;
    else if (side === "b" && page.items.length > 1) select.selectedIndex = 1;
    const show = () => {
      const job = jobs.get(select.value);
      if (!job) return;
      $(`#video-${side}`).src = fileUrl(job.id);
      $(`#cap-${side}`).textContent = `${short(job.params.prompt, 100)} · seed ${job.seed}`;
    };
    select.addEventListener("change", show);
    show();
  }
  $("#play-both").addEventListener("click", () => {
    for (const video of [$("#video-a"), $("#video-b")]) { video.currentTime = 0; video.play().catch(() => {}); }
  });
}

// ------------------------------------------------------------------ review

let reviewRequests = 0;

async function loadReview() {
  // a decision and a filter change can each reload the list: only the latest request draws
  // it, or an older answer arriving late would show the list as it was
  const request = ++reviewRequests;
  const status = $("#review-status").value;
  const data = await api("GET", `/api/review${status ? `?status=${status}` : ""}`);
  if (request !== reviewRequests) return;
  const list = $("#review-list");
  list.replaceChildren(...data.items.map((item) => {
    const node = $("#review-item").content.firstElementChild.cloneNode(true);
    node.dataset.id = item.id;
    showMedia(node, fileUrl(item.job), item.kind === "image");
    $(".prompt", node).textContent = short(item.prompt || "(prompt hidden)", 140);
    node.dataset.status = item.status;
    $(".meta", node).textContent = `${item.status}${item.kind === "image" ? " · image" : ""}${item.edit ? ` · ${item.edit}` : ""} · seed ${item.seed} · id ${item.id}` +
      ` · by ${item.mine ? "you" : item.creator}` +
      (item.reviewer ? ` · ${item.status} by ${item.reviewer}${item.self_review ? " (self-review)" : ""}${item.note ? `: ${item.note}` : ""}` : "");
    // the server says what this token may do to the item now (its role, the state, four-eyes)
    for (const act of ["approve", "reject", "withdraw"]) $(`[data-act="${act}"]`, node).hidden = !item.can.includes(act);
    $('[data-act="publish"]', node).hidden = !item.can.includes("publish") || item.published;
    $(".note", node).closest("label").hidden = !["approve", "reject", "withdraw"].some((act) => item.can.includes(act));
    const published = $('[data-act="published"]', node);
    published.hidden = !item.published;
    published.href = `/api/jobs/${item.job}/published`;
    node.dataset.job = item.job;
    return node;
  }));
  if (!data.items.length) list.textContent = "Nothing here.";
}

function initReview() {
  $("#review-status").addEventListener("change", loadReview);
  $("#review-list").addEventListener("click", async (event) => {
    const button = event.target.closest("[data-act]");
    if (!button || button.tagName === "A") return;
    const node = button.closest(".take");
    try {
      if (button.dataset.act === "publish") await api("POST", `/api/jobs/${node.dataset.job}/publish`);
      else await api("POST", `/api/review/${node.dataset.id}/${button.dataset.act}`, { note: $(".note", node).value });
    } catch (error) {
      alert(error.message);
    }
    loadReview();
  });
  loadReview();
}

// ------------------------------------------------------------------ verify

function initVerify() {
  const form = $("#verify-form");
  const drop = $("#drop");
  const input = $('input[type="file"]', form);
  drop.addEventListener("dragover", (e) => { e.preventDefault(); drop.classList.add("over"); });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (e) => {
    e.preventDefault();
    drop.classList.remove("over");
    input.files = e.dataTransfer.files;
    form.requestSubmit();
  });
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    $("#verify-summary").textContent = "checking…";
    $("#verify-verdict").textContent = "";
    $("#verify-json").textContent = "";
    try {
      const report = await api("POST", "/api/verify", new FormData(form));
      const mark = report.watermark || {};
      const found = mark.detected ? `found (v${mark.version || 2}, ${mark.payload_bits || 64}-bit payload${mark.payload_valid ? "" : ", unreadable"})` : "not found";
      $("#verify-summary").textContent = `${report.summary || ""}. C2PA: ${report.c2pa.state}; watermark: ${found}.`;
      $("#verify-verdict").textContent = report.verdict ? `Verdict: ${report.verdict.line}` : "";
      $("#verify-json").textContent = JSON.stringify(report, null, 2);
    } catch (error) {
      $("#verify-summary").textContent = error.message;
    }
  });
}

const INIT = { studio: initStudio, compare: initCompare, review: initReview, verify: initVerify };
document.addEventListener("DOMContentLoaded", () => {
  const init = INIT[document.body.dataset.page];
  if (init) Promise.resolve(init()).catch((error) => console.error(error));
});
