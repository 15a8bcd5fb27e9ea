// kmq serve: the page. Uploads an image once (a token refers to it afterwards), asks the server
// for a quantized version whenever a control changes, and shows original and result in a split
// view with zoom and pan. No dependencies, nothing loaded from elsewhere.
"use strict";

(() => {
  const $ = (id) => document.getElementById(id);
  const els = {
    file: $("file"), drop: $("drop"), fileInfo: $("file-info"), samples: $("samples"),
    sampleButtons: $("sample-buttons"),
    k: $("k"), kValue: $("k-value"), colorspace: $("colorspace"),
    ditherOn: $("dither-on"), dither: $("dither"), ditherValue: $("dither-value"),
    format: $("format"), maxKb: $("max-kb"), download: $("download"),
    palette: $("palette"), shareBar: $("share-bar"),
    viewer: $("viewer"), layer: $("layer"), original: $("original"), result: $("result"),
    divider: $("divider"), handle: $("handle"), resultTag: $("result-tag"),
    zoomIn: $("zoom-in"), zoomOut: $("zoom-out"), zoomFit: $("zoom-fit"), zoom1: $("zoom-1"),
    zoomValue: $("zoom-value"), status: $("status"), overlay: $("drop-overlay"),
  };

  const DEBOUNCE_MS = 200;
  // What the color spaces are good for; the choices themselves come from the server.
  const SPACE_LABELS = {
    srgb: "sRGB (lowest error)", wsrgb: "weighted sRGB (perceptual)", linear: "linear RGB",
    oklab: "OKLab",
  };
  const MIN_ZOOM = 0.05;
  const MAX_ZOOM = 64;

  const state = {
    config: null,
    file: null,          // the File the current token came from (to upload again on 404)
    image: null,         // {token, name, width, height, input_bytes, original}
    seq: 0,              // number of the latest request; older answers are ignored
    requests: 0,         // quantize requests not settled yet (answered, failed or aborted)
    uploadSeq: 0,        // the same for uploads: only the latest image chosen is shown
    controller: null,    // AbortController of the request in flight
    timer: null,         // debounce timer of the sliders
    result: null,        // the result on display
    downloadUrl: null,
    view: { scale: 1, tx: 0, ty: 0, split: 0.5, fitted: true },
  };

  // ---------------------------------------------------------------------------------------
  // Small helpers

  function setState(name) { document.body.dataset.state = name; }

  function setStatus(text, isError = false) {
    els.status.textContent = text;
    els.status.classList.toggle("error", isError);
  }

  /** Bytes in decimal units, as kmq's report gives them: 1 kB = 1000 B. */
  function formatBytes(n) {
    if (n < 1000) return `${n} B`;
    if (n < 1000 * 1000) return `${(n / 1000).toFixed(1)} kB`;
    return `${(n / 1000 / 1000).toFixed(2)} MB`;
  }

  /** The change from ``before`` to ``after`` bytes in percent: "-62%", "+100%". */
  function formatChange(before, after) {
    const pct = 100 * (after / before - 1);
    const size = Math.abs(pct);
    const digits = size < 1 && size > 0 ? 1 : 0;
    const sign = pct > 0 ? "+" : pct < 0 ? "-" : "";
    return `${sign}${size.toFixed(digits)}%`;
  }

  function setRequests(delta) {
    state.requests += delta;
    document.body.dataset.requests = String(state.requests);
  }

  function setStat(id, text, value) {
    const cell = $(id);
    cell.textContent = text;
    cell.dataset.value = value === null || value === undefined ? "" : String(value);
  }

  function base64ToBytes(b64) {
    const bin = atob(b64);
    const bytes = new Uint8Array(bin.length);
    for (let i = 0; i < bin.length; i++) bytes[i] = bin.charCodeAt(i);
    return bytes;
  }

  async function errorOf(response) {
    try {
      const body = await response.json();
      if (body && typeof body.error === "string") return body.error;
    } catch (_) { /* not JSON */ }
    return `the server answered ${response.status} ${response.statusText}`;
  }

  /** The controls as request parameters. */
  function currentParams() {
    return {
      k: Number(els.k.value),
      colorspace: els.colorspace.value,
      dither: els.ditherOn.checked ? Number(els.dither.value) : 0,
      format: els.format.value,
      max_bytes: maxBytes(),
    };
  }

  /** The "Max size (kB)" field in bytes (1 kB = 1000 B), or null when empty or not a size. */
  function maxBytes() {
    const kb = Number(els.maxKb.value);
    return els.maxKb.value.trim() !== "" && Number.isFinite(kb) && kb > 0
      ? Math.max(1, Math.round(kb * 1000)) : null;
  }

  function sameParams(a, b) {
    return a.k === b.k && a.colorspace === b.colorspace && a.format === b.format
      && Math.abs(a.dither - b.dither) < 1e-9 && (a.max_bytes ?? null) === (b.max_bytes ?? null);
  }

  // ---------------------------------------------------------------------------------------
  // Loading an image

  function fillSelect(select, options, preferred) {
    select.replaceChildren(...options.map(({ value, label }) => {
      const option = document.createElement("option");
      option.value = value;
      option.textContent = label;
      return option;
    }));
    select.value = preferred;
  }

  /** The choices and limits from the server: K range, color spaces and formats are kmq's. */
  async function loadConfig() {
    try {
      const response = await fetch("api/config");
      if (!response.ok) throw new Error(await errorOf(response));
      state.config = await response.json();
    } catch (err) {
      state.config = null;
      showError(`cannot load the page's settings: ${err.message}`);
      return;
    }
    const c = state.config;
    els.k.min = String(c.k_min);
    els.k.max = String(c.k_max);
    els.k.value = String(c.k_default);
    els.kValue.textContent = els.k.value;
    fillSelect(els.colorspace, c.colorspaces.map((name) => (
      { value: name, label: SPACE_LABELS[name] || name })), c.colorspaces[0]);
    fillSelect(els.format, c.formats.map((f) => (
      { value: f.name, label: `${f.title} (${f.extension})` })), c.formats[0].name);
    if (document.body.dataset.state === "loading") setState("empty");
    const names = c.samples || [];
    els.sampleButtons.replaceChildren(...names.map((name) => {
      const button = document.createElement("button");
      button.type = "button";
      button.className = "link";
      button.textContent = name;
      button.addEventListener("click", () => loadSample(name));
      return button;
    }));
    els.samples.hidden = names.length === 0;
  }

  /** Forget the requests on their way: their answers will not be shown. */
  function dropPending() {
    state.seq += 1;
    if (state.controller) state.controller.abort();
    clearTimeout(state.timer);
  }

  /** A new image is on its way (the current one stays usable until it arrives). */
  function newImage() {
    dropPending();
    return ++state.uploadSeq;
  }

  async function upload(file) {
    const headers = { "X-Filename": encodeURIComponent(file.name || "upload") };
    const response = await fetch("api/images", { method: "POST", body: file, headers });
    if (!response.ok) throw new Error(await errorOf(response));
    return response.json();
  }

  async function loadFile(file) {
    if (!file) return;
    const mine = newImage();
    await configReady;
    if (mine !== state.uploadSeq) return;
    const limit = state.config && state.config.max_upload_bytes;
    if (limit && file.size > limit) {
      showError(`${file.name}: ${formatBytes(file.size)} is over the upload limit of `
        + `${formatBytes(limit)}`);
      return;
    }
    setState("uploading");
    setStatus(`Uploading ${file.name}…`);
    try {
      const info = await upload(file);
      if (mine !== state.uploadSeq) return;
      state.file = file;
      await showImage(info, mine);
    } catch (err) {
      if (mine === state.uploadSeq) showError(err.message);
    }
  }

  async function loadSample(name) {
    const mine = newImage();
    await configReady;
    if (mine !== state.uploadSeq) return;
    setState("uploading");
    setStatus(`Loading the sample ${name}…`);
    try {
      const response = await fetch(`api/samples/${encodeURIComponent(name)}`, { method: "POST" });
      if (!response.ok) throw new Error(await errorOf(response));
      const info = await response.json();
      if (mine !== state.uploadSeq) return;
      state.file = null;
      await showImage(info, mine);
    } catch (err) {
      if (mine === state.uploadSeq) showError(err.message);
    }
  }

  async function showImage(info, mine) {
    dropPending();
    state.image = info;
    state.result = null;
    els.result.removeAttribute("src");
    els.result.hidden = true;
    clearResultDisplay();
    els.fileInfo.textContent = `${info.name}: ${info.width}×${info.height}, `
      + formatBytes(info.input_bytes)
      + (info.warnings && info.warnings.length ? ` (${info.warnings.join("; ")})` : "");
    setStat("stat-size", `${info.width} × ${info.height}`, info.width * info.height);
    setStat("stat-input-bytes", formatBytes(info.input_bytes), info.input_bytes);
    await new Promise((resolve) => {
      els.original.onload = resolve;
      els.original.onerror = resolve;
      els.original.src = info.original;
    });
    if (mine !== state.uploadSeq) return;
    document.body.classList.add("has-image");
    fitView();
    update();
  }

  // ---------------------------------------------------------------------------------------
  // Quantizing: one request at a time, the latest wins

  function scheduleUpdate() {
    clearTimeout(state.timer);
    state.timer = setTimeout(update, DEBOUNCE_MS);
  }

  async function update() {
    clearTimeout(state.timer);
    if (!state.image) return;
    const params = currentParams();
    const seq = ++state.seq;
    if (state.controller) state.controller.abort();
    const controller = new AbortController();
    state.controller = controller;
    setState("working");
    setStatus(params.max_bytes === null ? `Quantizing to ${params.k} colors…`
      : `Finding the most colors (up to ${params.k}) within ${formatBytes(params.max_bytes)}…`);
    setRequests(1);
    const query = new URLSearchParams({
      k: String(params.k), colorspace: params.colorspace,
      dither: String(params.dither), format: params.format,
    });
    if (params.max_bytes !== null) query.set("max_bytes", String(params.max_bytes));
    try {
      let response = await fetch(`api/images/${state.image.token}/quantize?${query}`,
        { signal: controller.signal });
      if (response.status === 404 && state.file && seq === state.seq) {
        // The server forgot the image (evicted or restarted): upload it again, once.
        const info = await upload(state.file);
        if (seq !== state.seq) return;
        state.image = info;
        response = await fetch(`api/images/${info.token}/quantize?${query}`,
          { signal: controller.signal });
      }
      if (!response.ok) {
        const message = await errorOf(response);
        if (seq === state.seq) showError(message, true);
        return;
      }
      const result = await response.json();
      // Stale answers (an older request, or controls that changed since) are not shown.
      if (seq !== state.seq || !sameParams(result.params, currentParams())) return;
      showResult(result);
    } catch (err) {
      if (err.name === "AbortError") return;
      if (seq === state.seq) showError(err.message, true);
    } finally {
      if (state.controller === controller) state.controller = null;
      setRequests(-1);
    }
  }

  /** Show a one-line error; ``resultIsStale``: the result on display no longer matches the
   * controls (the request for the current ones failed), which the result's label then says. */
  function showError(message, resultIsStale = false) {
    setState("error");
    setStatus(message, true);
    if (resultIsStale && state.result) {
      els.resultTag.textContent = `previous result (${state.result.params.k} colors)`;
    }
  }

  function clearResultDisplay() {
    for (const id of ["stat-output-bytes", "stat-change", "stat-bpp", "stat-k", "stat-psnr",
      "stat-ssim", "stat-time"]) setStat(id, "–", null);
    $("stat-change").classList.remove("larger");
    $("stat-change").removeAttribute("title");
    els.palette.replaceChildren();
    els.shareBar.replaceChildren();
    els.download.setAttribute("aria-disabled", "true");
    els.download.removeAttribute("href");
    els.resultTag.textContent = "kmq";
  }

  function showResult(r) {
    const shown = r.preview || r.output;
    els.result.src = `data:${shown.mime};base64,${shown.base64}`;
    els.result.hidden = false;
    state.result = r;
    const p = r.params;
    const dither = p.dither > 0 ? `, dither ${p.dither}` : "";
    const budget = p.max_bytes ? ` · ≤ ${formatBytes(p.max_bytes)}` : "";
    els.resultTag.textContent = `kmq · ${r.k} colors · ${p.colorspace}${dither}${budget}`;
    els.result.dataset.k = String(p.k);
    els.result.dataset.maxBytes = p.max_bytes ? String(p.max_bytes) : "";
    els.result.dataset.colorspace = p.colorspace;
    els.result.dataset.dither = String(p.dither);
    els.result.dataset.format = p.format;

    setStat("stat-output-bytes", `${formatBytes(r.output_bytes)} (${p.format})`, r.output_bytes);
    const change = $("stat-change");
    setStat("stat-change", formatChange(r.input_bytes, r.output_bytes), r.size_change);
    change.classList.toggle("larger", r.output_bytes > r.input_bytes);
    change.title = `${formatBytes(r.input_bytes)} → ${formatBytes(r.output_bytes)}; `
      + `${r.ratio_raw.toFixed(1)}× smaller than the raw pixels`;
    setStat("stat-bpp", r.bits_per_pixel.toFixed(3), r.bits_per_pixel);
    setStat("stat-k", `${r.k} of ${p.k}`, r.k);
    $("stat-k").title = `the image has ${r.distinct_colors.toLocaleString()} distinct colors`;
    setStat("stat-psnr", r.psnr === null ? "exact" : `${r.psnr.toFixed(2)} dB`,
      r.psnr === null ? "inf" : r.psnr);
    setStat("stat-ssim", r.ssim === null ? "n/a" : r.ssim.toFixed(4), r.ssim);
    const s = r.seconds;
    setStat("stat-time", `${(s.quantize + s.encode).toFixed(2)} s`, s.quantize + s.encode);
    $("stat-time").title = `quantize ${s.quantize.toFixed(3)} s, encode ${s.encode.toFixed(3)} s `
      + `(measuring PSNR and SSIM: ${s.measure.toFixed(3)} s more)`;

    renderPalette(r.palette);

    const bytes = base64ToBytes(r.output.base64);
    if (state.downloadUrl) URL.revokeObjectURL(state.downloadUrl);
    state.downloadUrl = URL.createObjectURL(new Blob([bytes], { type: r.output.mime }));
    els.download.href = state.downloadUrl;
    els.download.download = r.output.filename;
    els.download.textContent = `Download ${r.output.filename}`;
    els.download.setAttribute("aria-disabled", "false");

    setState("ready");
    setStatus(`${r.k} colors: ${r.psnr === null ? "exact" : r.psnr.toFixed(2) + " dB"}, `
      + `${formatBytes(r.output_bytes)}`);
  }

  function renderPalette(palette) {
    const bar = [];
    const items = [];
    for (const entry of palette) {
      const pct = (100 * entry.share);
      const stripe = document.createElement("span");
      stripe.style.backgroundColor = entry.hex;
      stripe.style.flexGrow = String(entry.share);
      stripe.title = `${entry.hex} ${pct.toFixed(2)}%`;
      bar.push(stripe);

      const li = document.createElement("li");
      li.className = "swatch";
      li.title = `${entry.hex}: ${entry.count.toLocaleString()} pixels`;
      const chip = document.createElement("span");
      chip.className = "chip";
      chip.style.backgroundColor = entry.hex;
      const hex = document.createElement("code");
      hex.textContent = entry.hex;
      const share = document.createElement("span");
      share.className = "share";
      share.textContent = pct >= 0.1 ? `${pct.toFixed(1)}%` : "<0.1%";
      li.append(chip, hex, share);
      items.push(li);
    }
    els.shareBar.replaceChildren(...bar);
    els.palette.replaceChildren(...items);
  }

  // ---------------------------------------------------------------------------------------
  // Split view, zoom and pan

  function imageSize() {
    return state.image ? { w: state.image.width, h: state.image.height } : null;
  }

  function fitScale() {
    const size = imageSize();
    if (!size) return 1;
    const rect = els.viewer.getBoundingClientRect();
    return Math.min(rect.width / size.w, rect.height / size.h);
  }

  /** Keep the image on screen: centred on an axis where it is smaller than the viewer. */
  function clampView() {
    const size = imageSize();
    if (!size) return;
    const rect = els.viewer.getBoundingClientRect();
    const v = state.view;
    const w = size.w * v.scale;
    const h = size.h * v.scale;
    v.tx = w <= rect.width ? (rect.width - w) / 2 : Math.min(0, Math.max(rect.width - w, v.tx));
    v.ty = h <= rect.height ? (rect.height - h) / 2
      : Math.min(0, Math.max(rect.height - h, v.ty));
  }

  function applyView() {
    const v = state.view;
    const rect = els.viewer.getBoundingClientRect();
    els.layer.style.transform = `translate(${v.tx}px, ${v.ty}px) scale(${v.scale})`;
    els.layer.classList.toggle("pixelated", v.scale >= 2);
    const x = v.split * rect.width;
    els.divider.style.left = `${x}px`;
    const size = imageSize();
    const cut = size ? Math.min(size.w, Math.max(0, (x - v.tx) / v.scale)) : 0;
    els.result.style.clipPath = `inset(0 0 0 ${cut}px)`;
    els.zoomValue.textContent = `${Math.round(v.scale * 100)}%`;
    els.zoomValue.dataset.value = String(v.scale);
    els.handle.setAttribute("aria-valuenow", String(Math.round(v.split * 100)));
  }

  function fitView() {
    state.view.scale = fitScale();
    state.view.fitted = true;
    clampView();
    applyView();
  }

  /** Zoom to ``scale`` keeping the viewer point (cx, cy) over the same image pixel. */
  function zoomTo(scale, cx, cy) {
    const v = state.view;
    const rect = els.viewer.getBoundingClientRect();
    if (cx === undefined) { cx = rect.width / 2; cy = rect.height / 2; }
    const next = Math.min(MAX_ZOOM, Math.max(Math.min(MIN_ZOOM, fitScale()), scale));
    v.tx = cx - (cx - v.tx) * (next / v.scale);
    v.ty = cy - (cy - v.ty) * (next / v.scale);
    v.scale = next;
    v.fitted = false;
    clampView();
    applyView();
  }

  els.viewer.addEventListener("wheel", (event) => {
    if (!state.image) return;
    event.preventDefault();
    const rect = els.viewer.getBoundingClientRect();
    const factor = Math.exp(-event.deltaY * (event.deltaMode === 1 ? 0.05 : 0.0015));
    zoomTo(state.view.scale * factor, event.clientX - rect.left, event.clientY - rect.top);
  }, { passive: false });

  els.zoomIn.addEventListener("click", () => zoomTo(state.view.scale * 1.5));
  els.zoomOut.addEventListener("click", () => zoomTo(state.view.scale / 1.5));
  els.zoomFit.addEventListener("click", fitView);
  els.zoom1.addEventListener("click", () => zoomTo(1));

  let drag = null;  // {kind: "split"|"pan", x, y, tx, ty}

  els.viewer.addEventListener("pointerdown", (event) => {
    if (!state.image || event.button !== 0) return;
    const rect = els.viewer.getBoundingClientRect();
    const x = event.clientX - rect.left;
    const nearLine = Math.abs(x - state.view.split * rect.width) <= 12;
    const kind = nearLine || els.handle.contains(event.target) ? "split" : "pan";
    drag = { kind, x: event.clientX, y: event.clientY, tx: state.view.tx, ty: state.view.ty };
    els.viewer.setPointerCapture(event.pointerId);
    els.viewer.classList.add(kind === "split" ? "splitting" : "panning");
    if (kind === "split") moveSplit(event);
    event.preventDefault();
  });

  function moveSplit(event) {
    const rect = els.viewer.getBoundingClientRect();
    state.view.split = Math.min(1, Math.max(0, (event.clientX - rect.left) / rect.width));
    applyView();
  }

  els.viewer.addEventListener("pointermove", (event) => {
    if (!drag) return;
    if (drag.kind === "split") {
      moveSplit(event);
    } else {
      state.view.tx = drag.tx + event.clientX - drag.x;
      state.view.ty = drag.ty + event.clientY - drag.y;
      state.view.fitted = false;
      clampView();
      applyView();
    }
  });

  function endDrag() {
    drag = null;
    els.viewer.classList.remove("splitting", "panning");
  }
  els.viewer.addEventListener("pointerup", endDrag);
  els.viewer.addEventListener("pointercancel", endDrag);

  els.handle.addEventListener("keydown", (event) => {
    const step = { ArrowLeft: -0.02, ArrowRight: 0.02, Home: -1, End: 1 }[event.key];
    if (step === undefined) return;
    state.view.split = Math.min(1, Math.max(0, state.view.split + step));
    applyView();
    event.preventDefault();
  });

  document.addEventListener("keydown", (event) => {
    if (!state.image || event.target.closest("input, select, textarea")) return;
    if (event.key === "+" || event.key === "=") zoomTo(state.view.scale * 1.5);
    else if (event.key === "-") zoomTo(state.view.scale / 1.5);
    else if (event.key === "0") fitView();
    else if (event.key === "1") zoomTo(1);
  });

  window.addEventListener("resize", () => {
    if (state.view.fitted) fitView();
    else { clampView(); applyView(); }
  });

  // ---------------------------------------------------------------------------------------
  // Controls

  els.k.addEventListener("input", () => {
    els.kValue.textContent = els.k.value;
    scheduleUpdate();
  });
  els.k.addEventListener("change", update);

  function showDither() {
    els.dither.disabled = !els.ditherOn.checked;
    els.ditherValue.textContent = els.ditherOn.checked ? Number(els.dither.value).toFixed(2)
      : "off";
  }
  els.ditherOn.addEventListener("change", () => { showDither(); update(); });
  els.dither.addEventListener("input", () => { showDither(); scheduleUpdate(); });
  els.dither.addEventListener("change", update);
  els.colorspace.addEventListener("change", update);
  els.format.addEventListener("change", update);
  els.maxKb.addEventListener("input", scheduleUpdate);
  els.maxKb.addEventListener("change", update);

  els.download.addEventListener("click", (event) => {
    if (els.download.getAttribute("aria-disabled") === "true") event.preventDefault();
  });

  els.file.addEventListener("change", () => {
    const file = els.file.files[0];
    els.file.value = "";  // choosing the same file again still loads it
    loadFile(file);
  });

  // Drag and drop anywhere on the page.
  let dragDepth = 0;
  window.addEventListener("dragenter", (event) => {
    if (!event.dataTransfer || !Array.from(event.dataTransfer.types).includes("Files")) return;
    dragDepth += 1;
    document.body.classList.add("dragging");
  });
  window.addEventListener("dragleave", () => {
    dragDepth = Math.max(0, dragDepth - 1);
    if (dragDepth === 0) document.body.classList.remove("dragging");
  });
  window.addEventListener("dragover", (event) => event.preventDefault());
  window.addEventListener("drop", (event) => {
    event.preventDefault();
    dragDepth = 0;
    document.body.classList.remove("dragging");
    const file = event.dataTransfer && event.dataTransfer.files[0];
    if (file) loadFile(file);
  });

  showDither();
  applyView();
  const configReady = loadConfig();
})();
