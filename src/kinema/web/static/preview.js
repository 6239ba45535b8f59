// kinema studio: a running take's live preview (kept apart from app.js, which calls it).
"use strict";

function showPreview(node, job) {
  // while a job runs, its live preview (a contact sheet of the clip as sampled so far, which
  // the worker rewrites every few steps) sits above the step counter; the take's clip
  // replaces it when the job ends. A new sheet is asked for when the step moves, and shown
  // once loaded (no flicker); a 404 (none yet, or a model that shows none) keeps the last.
  const preview = $(".preview", node);
  if (job.status !== "running" || !job.progress.i) {
    preview.hidden = true;
    preview.style.backgroundImage = "";
    delete preview.dataset.step;
    return;
  }
  const step = String(job.progress.i);
  if (preview.dataset.step === step) return;
  preview.dataset.step = step;
  const next = new Image();
  next.onload = () => {
    if (preview.dataset.step !== step) return;
    // a background, not an <img>: a take's <img> is its still
    preview.style.backgroundImage = `url("${next.src}")`;
    preview.style.aspectRatio = `${next.naturalWidth} / ${next.naturalHeight}`;
    preview.hidden = false;
  };
  next.src = `/api/jobs/${job.id}/preview?step=${step}`;
}
