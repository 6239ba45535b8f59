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
  if (!response.ok) throw new Error(message(data) || response.statusText);
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

const studio = { offset: 0, limit: 12, timer: null };

async function submitJob(event) {
  event.preventDefault();
  const form = event.target;
  const status = $("#form-status");
  const fields = new FormData(form);
  const body = { prompt: fields.get("prompt"), negative: fields.get("negative") || "", loop: fields.get("loop") === "on" };
  for (const name of ["seed", "frames", "steps"]) if (fields.get(name)) body[name] = parseInt(fields.get(name), 10);
  if (fields.get("guidance")) body.guidance = parseFloat(fields.get("guidance"));
  if (fields.get("size")) body.size = fields.get("size");
  try {
    const image = fields.get("image");
    if (image && image.size) {
      status.textContent = "uploading the first image…";
      const upload = new FormData();
      upload.append("file", image);
      body.mode = "i2v";
      body.image = (await api("POST", "/api/uploads", upload)).id;
    }
    const job = await api("POST", "/api/jobs", body);
    status.textContent = `queued (seed ${job.seed})`;
    studio.offset = 0;
    refresh();
  } catch (error) {
    status.textContent = error.message;
    status.classList.add("error");
    return;
  }
  status.classList.remove("error");
}

function describe(job) {
  const p = job.params;
  const size = p.size ? ` · ${p.size[0]}×${p.size[1]}` : "";
  const progress = job.status === "running" && job.progress.n ? ` · step ${job.progress.i}/${job.progress.n}` : "";
  return `${job.status}${progress} · seed ${p.seed}${p.frames ? ` · ${p.frames} frames` : ""}${size}${job.error ? ` · ${job.error}` : ""}`;
}

function renderTake(job, old) {
  const node = old || $("#take").content.firstElementChild.cloneNode(true);
  node.dataset.id = job.id;
  node.dataset.status = job.status;
  $(".prompt", node).textContent = short(job.params.prompt, 140);
  $(".meta", node).textContent = describe(job);
  const fraction = job.status === "done" ? 1 : job.progress.n ? job.progress.i / job.progress.n : 0;
  $(".fill", node).style.width = `${Math.round(fraction * 100)}%`;
  $(".bar", node).hidden = job.status === "done";
  const video = $("video", node);
  video.hidden = job.status !== "done";
  if (job.status === "done" && !video.src) { video.src = fileUrl(job.id); video.play().catch(() => {}); }
  const download = $('[data-act="download"]', node);
  download.hidden = job.status !== "done";
  download.href = `${fileUrl(job.id)}?download=true`;
  $('[data-act="cancel"]', node).hidden = !["queued", "running"].includes(job.status);
  $('[data-act="compare"]', node).hidden = job.status !== "done";
  return node;
}

async function refresh() {
  clearTimeout(studio.timer);
  let page;
  try {
    page = await api("GET", `/api/jobs?limit=${studio.limit}&offset=${studio.offset}`);
  } catch (error) {
    $("#form-status").textContent = error.message;
    studio.timer = setTimeout(refresh, 5000);
    return;
  }
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
    if (act === "cancel") await api("POST", `/api/jobs/${id}/cancel`);
    if (act === "delete" && confirm("Delete this take and its file?")) await api("DELETE", `/api/jobs/${id}`);
    if (act === "compare") {
      const other = [...document.querySelectorAll('.take[data-status="done"]')].map((n) => n.dataset.id).find((x) => x !== id);
      location.href = `/compare?a=${id}${other ? `&b=${other}` : ""}`;
      return;
    }
  } catch (error) {
    alert(error.message);
  }
  refresh();
}

function initStudio() {
  $("#job-form").addEventListener("submit", submitJob);
  $("#gallery").addEventListener("click", takeAction);
  $("#prev").addEventListener("click", () => { studio.offset = Math.max(0, studio.offset - studio.limit); refresh(); });
  $("#next").addEventListener("click", () => { studio.offset += studio.limit; refresh(); });
  refresh();
}

// ------------------------------------------------------------------ compare

async function initCompare() {
  const params = new URLSearchParams(location.search);
  const page = await api("GET", "/api/jobs?status=done&limit=200");
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

async function loadReview() {
  const status = $("#review-status").value;
  const data = await api("GET", `/api/review${status ? `?status=${status}` : ""}`);
  const list = $("#review-list");
  list.replaceChildren(...data.items.map((item) => {
    const node = $("#review-item").content.firstElementChild.cloneNode(true);
    node.dataset.id = item.id;
    $("video", node).src = fileUrl(item.job);
    $(".prompt", node).textContent = short(item.prompt || "(prompt hidden)", 140);
    $(".meta", node).textContent = `${item.status} · seed ${item.seed} · id ${item.id}` +
      (item.reviewer ? ` · ${item.reviewer}${item.note ? `: ${item.note}` : ""}` : "");
    $('[data-act="approve"]', node).hidden = item.status === "approved";
    $('[data-act="reject"]', node).hidden = item.status === "rejected";
    return node;
  }));
  if (!data.items.length) list.textContent = "Nothing here.";
}

function initReview() {
  $("#review-status").addEventListener("change", loadReview);
  $("#review-list").addEventListener("click", async (event) => {
    const button = event.target.closest("[data-act]");
    if (!button) return;
    const node = button.closest(".take");
    try {
      await api("POST", `/api/review/${node.dataset.id}/${button.dataset.act}`, { note: $(".note", node).value });
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
    $("#verify-json").textContent = "";
    try {
      const report = await api("POST", "/api/verify", new FormData(form));
      const mark = report.watermark || {};
      $("#verify-summary").textContent = `${report.summary || ""}. C2PA: ${report.c2pa.state}; watermark: ${mark.detected ? "found" : "not found"}.`;
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
