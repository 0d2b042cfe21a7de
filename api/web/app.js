// Bone2Gene web page: plain JavaScript, no build step. The API key stays in this tab
// (sessionStorage) and is sent as a Bearer header; images are fetched the same way and
// shown through blob URLs, so no file path or key ever appears in a URL.
"use strict";

const $ = (id) => document.getElementById(id);
let key = sessionStorage.getItem("b2g-key") || "";
let role = "";
let currentAnalysis = null;
let catalogue = {};

async function api(path, options = {}) {
  const headers = Object.assign({ Authorization: `Bearer ${key}` }, options.headers || {});
  const response = await fetch(path, Object.assign({}, options, { headers }));
  if (!response.ok) {
    let message = `${response.status} ${response.statusText}`;
    try {
      const problem = await response.json();
      message = problem.detail || problem.title || message;
      if (problem.reasons && problem.reasons.length) message += "\n• " + problem.reasons.join("\n• ");
    } catch (e) { /* not JSON */ }
    const error = new Error(message);
    error.status = response.status;
    throw error;
  }
  return response;
}

async function imageInto(img, path) {
  const blob = await (await api(path)).blob();
  if (img.src && img.src.startsWith("blob:")) URL.revokeObjectURL(img.src);
  img.src = URL.createObjectURL(blob);
}

function text(node, value) { node.textContent = value; }

function years(months) { return (months / 12).toFixed(1); }

async function signIn(candidate) {
  key = candidate;
  const model = await (await api("/api/v1/model")).json();
  const stats = await (await api("/api/v1/gallery/stats")).json();
  const me = await (await api("/api/v1/me")).json();
  role = me.role;
  const canCurate = role === "curator" || role === "admin";
  sessionStorage.setItem("b2g-key", key);
  text($("who"), `(${role})`);
  text($("gallery-size"), stats.cases);
  text($("model-note"), `${model.fingerprint.slice(0, 12)}${model.note ? " — " + model.note : ""}`);
  $("signin").hidden = true;
  $("app").hidden = false;
  $("curate").dataset.allowed = canCurate ? "1" : "";
  const disorders = await (await api("/api/v1/disorders")).json();
  catalogue = Object.fromEntries(disorders.map((d) => [d.id, d]));
  const select = $("add-disorder");
  select.innerHTML = "";
  for (const d of disorders) {
    const option = document.createElement("option");
    option.value = d.id;
    option.textContent = d.name;
    select.appendChild(option);
  }
}

$("signin-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  text($("signin-error"), "");
  try { await signIn($("key").value.trim()); }
  catch (e) { key = ""; text($("signin-error"), e.message); }
});

$("signout").addEventListener("click", () => {
  sessionStorage.removeItem("b2g-key");
  location.reload();
});

function renderResult(result) {
  currentAnalysis = result;
  $("result").hidden = false;
  const notes = [...result.quality.codes, ...(result.quality.warnings || [])];
  const measured = notes.length ? ` (notes: ${notes.join("; ")})` : "";
  text($("gate"), `Accepted: a usable hand radiograph${measured}.`);
  let bone = `${years(result.bone_age_months)} years (${result.bone_age_months.toFixed(0)} months)`;
  if (result.bone_age_deviation_months !== null) {
    const d = result.bone_age_deviation_months;
    bone += `; ${Math.abs(d).toFixed(0)} months ${d >= 0 ? "ahead of" : "behind"} the chronological age`;
  }
  if (result.bone_age_z !== null) bone += `; z-score ${result.bone_age_z.toFixed(2)} (${result.bone_age_z_note})`;
  text($("bone-age"), bone);
  const p = result.male_probability;
  let sexText = `Used: ${result.sex === "M" ? "male" : "female"} (${result.sex_source}). The model reads the image as ${p >= 0.5 ? "male" : "female"} (${Math.round(100 * Math.max(p, 1 - p))}%).`;
  if (result.sex_warning) sexText += ` Warning: ${result.sex_warning}.`;
  text($("sex-check"), sexText);
  $("no-match").hidden = !result.ranking.no_close_match;
  const inGallery = result.ranking.in_gallery_probability;
  text($("in-gallery"), inGallery === null || inGallery === undefined ? "" :
    `Probability that this patient's disorder is one of the gallery's: ${Math.round(100 * inGallery)}% (every disorder's probability below includes it).`);
  const body = $("disorders").querySelector("tbody");
  body.innerHTML = "";
  result.ranking.disorders.slice(0, 10).forEach((d) => {
    const row = document.createElement("tr");
    const cells = [
      d.rank, d.name || d.label, ((catalogue[d.label] || {}).genes || []).join(", "),
      d.score === null ? "—" : d.score.toFixed(4),
      d.probability === null ? "not calibrated" : `${Math.round(100 * d.probability)}% (${Math.round(100 * d.interval[0])}–${Math.round(100 * d.interval[1])}%)`,
      d.cases_in_gallery,
    ];
    cells.push(sourcesText(d.sources));
    for (const value of cells) { const td = document.createElement("td"); td.textContent = value; row.appendChild(td); }
    const evidence = document.createElement("td");
    if (d.evidence.length) {
      const img = document.createElement("img");
      img.alt = `Most similar ${d.name || d.label} case ${d.evidence[0]}`;
      img.title = `case ${d.evidence[0]}`;
      evidence.appendChild(img);
      imageInto(img, `/api/v1/cases/${encodeURIComponent(d.evidence[0])}/thumbnail.png`).catch(() => { img.alt = "image unavailable"; });
    }
    row.appendChild(evidence);
    body.appendChild(row);
  });
  text($("calibration"), `${result.ranking.calibration}. ${result.ranking.disclaimer}`);
  imageInto($("query-thumb"), result.links.thumbnail).then(() => $("query-thumb").decode()).then(() => drawHand(result)).catch(() => {});
  drawProfile(result);
  $("overlay-figure").hidden = !result.links.overlay;
  if (result.links.overlay) imageInto($("overlay"), result.links.overlay);
  drawMap(result.analysis_id);
  $("curate").hidden = !$("curate").dataset.allowed;
  text($("add-status"), "");
  text($("add-error"), "");
}

const BONE_GROUPS = [[0, 5], [5, 10], [10, 14], [14, 19]];  // MC, PP, MP, DP in the API's bone order
const PROFILE_COLOURS = ["#d62728", "#1f77b4", "#2ca02c"];

function drawHand(result) {
  $("hand").hidden = !result.landmarks;
  if (!result.landmarks) return;
  const img = $("query-thumb"), canvas = $("hand-canvas"), ctx = canvas.getContext("2d");
  const [width, height] = result.image_size;
  const scale = Math.min(canvas.width / width, canvas.height / height);
  const dx = (canvas.width - width * scale) / 2, dy = (canvas.height - height * scale) / 2;
  ctx.fillStyle = "#000"; ctx.fillRect(0, 0, canvas.width, canvas.height);
  ctx.drawImage(img, dx, dy, width * scale, height * scale);
  const at = (p) => [dx + p.x * scale, dy + p.y * scale];
  ctx.strokeStyle = "#4fc3f7"; ctx.lineWidth = 1.5;
  for (const bone of result.bones) {
    const a = result.landmarks[bone.proximal], b = result.landmarks[bone.distal];
    if (a.x === null || b.x === null) continue;
    ctx.beginPath(); ctx.moveTo(...at(a)); ctx.lineTo(...at(b)); ctx.stroke();
  }
  for (const p of result.landmarks) {
    if (p.x === null) continue;
    ctx.fillStyle = p.confidence >= 0.5 ? "#ffeb3b" : "#ff9800";
    ctx.beginPath(); ctx.arc(...at(p), 2.5, 0, 7); ctx.fill();
  }
  const missing = result.landmarks.filter((p) => p.x === null).map((p) => p.name);
  text($("hand-caption"), `The 37 landmarks found on the film (yellow; orange: less certain); each blue line is one bone's measured length.${missing.length ? " Not found: " + missing.join(", ") + "." : ""}`);
}

function drawProfile(result) {
  if (!result.bones) return;
  const own = result.ranking.profile_z || result.bones.map((b) => b.z);
  const canvas = $("profile"), ctx = canvas.getContext("2d");
  const left = 36, right = 12, top = 12, bottom = 28;
  const typical = result.ranking.disorders.slice(0, 3).filter((d) => d.sources && d.sources.typical_profile);
  const values = own.concat(...typical.map((d) => d.sources.typical_profile)).filter((v) => v !== null);
  const limit = Math.max(3, Math.ceil(Math.max(0, ...values.map(Math.abs)) + 0.5));
  const sx = (i) => left + (i + 0.5) * (canvas.width - left - right) / own.length;
  const sy = (z) => top + (limit - z) / (2 * limit) * (canvas.height - top - bottom);
  ctx.clearRect(0, 0, canvas.width, canvas.height);
  ctx.fillStyle = "#e8e8e8"; ctx.fillRect(left, sy(2), canvas.width - left - right, sy(-2) - sy(2));
  ctx.strokeStyle = "#999"; ctx.lineWidth = 1;
  ctx.beginPath(); ctx.moveTo(left, sy(0)); ctx.lineTo(canvas.width - right, sy(0)); ctx.stroke();
  for (const [, end] of BONE_GROUPS.slice(0, 3)) {
    const x = (sx(end - 1) + sx(end)) / 2;
    ctx.beginPath(); ctx.moveTo(x, top); ctx.lineTo(x, canvas.height - bottom); ctx.stroke();
  }
  ctx.fillStyle = "#333"; ctx.font = "10px sans-serif"; ctx.textAlign = "center";
  result.bones.forEach((b, i) => ctx.fillText(b.bone, sx(i), canvas.height - 10));
  ctx.textAlign = "right";
  for (const z of [-limit, -2, 0, 2, limit]) ctx.fillText(String(z), left - 4, sy(z) + 3);
  const line = (zs, colour, width, dashed) => {
    ctx.strokeStyle = colour; ctx.fillStyle = colour; ctx.lineWidth = width; ctx.setLineDash(dashed ? [5, 4] : []);
    let drawing = false; ctx.beginPath();
    zs.forEach((z, i) => {
      if (z === null) { drawing = false; return; }
      if (drawing) ctx.lineTo(sx(i), sy(z)); else ctx.moveTo(sx(i), sy(z));
      drawing = true;
    });
    ctx.stroke(); ctx.setLineDash([]);
    zs.forEach((z, i) => { if (z !== null) { ctx.beginPath(); ctx.arc(sx(i), sy(z), width + 1, 0, 7); ctx.fill(); } });
  };
  typical.forEach((d, k) => line(d.sources.typical_profile, PROFILE_COLOURS[k], 1.5, true));
  line(own, "#000", 2, false);
  const legend = typical.map((d, k) => `${["red", "blue", "green"][k]} dashed: ${d.name || d.label}`);
  const outside = result.bones.filter((b, i) => own[i] !== null && Math.abs(own[i]) > 2).map((b, i) => b.bone);
  text($("bones-note"), `${result.bones.filter((b) => b.length_px !== null).length} of 19 bones measured; beyond ±2: ${outside.join(", ") || "none"}. ${legend.join("; ")}`);
}

function sourcesText(sources) {
  if (!sources) return "image only";
  const parts = Object.entries(sources.contributions).map(([name, value]) => `${name} ${value >= 0 ? "+" : ""}${value.toFixed(1)}`);
  const genes = sources.gene_hits.length ? `; in the gene list: ${sources.gene_hits.join(", ")}` : "";
  const profile = sources.profile_match === null || sources.profile_match === undefined ? "" :
    `; profile ${sources.profile_match >= 0 ? "fits" : "does not fit"} (log-likelihood ratio ${sources.profile_match.toFixed(1)})`;
  return `${Math.round(100 * sources.combined_probability)}% combined (${parts.join(", ")})${genes}${profile}`;
}

function idsOf(value) {
  return value.split(/[\s,;]+/).map((t) => t.trim()).filter(Boolean);
}

let hpoTimer = null;
$("hpo-search").addEventListener("input", () => {
  const typed = $("hpo-search").value.trim();
  const picked = typed.match(/^(HP:\d{7})\b/);
  if (picked) {  // a term chosen from the list: move its id to the terms seen
    const terms = idsOf($("hpo-terms").value);
    if (!terms.includes(picked[1])) terms.push(picked[1]);
    $("hpo-terms").value = terms.join(", ");
    $("hpo-search").value = "";
    return;
  }
  clearTimeout(hpoTimer);
  if (typed.length < 2) return;
  hpoTimer = setTimeout(async () => {
    try {
      const terms = await (await api(`/api/v1/phenotypes?search=${encodeURIComponent(typed)}&limit=12`)).json();
      const list = $("hpo-options"); list.innerHTML = "";
      for (const t of terms) { const option = document.createElement("option"); option.value = `${t.id} ${t.name}`; list.appendChild(option); }
    } catch (e) { /* autocompletion is a convenience: the ids can be typed */ }
  }, 200);
});

const PALETTE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf",
  "#393b79", "#637939", "#8c6d31", "#843c39", "#7b4173", "#3182bd", "#e6550d", "#31a354", "#756bb1", "#636363", "#6baed6", "#fd8d3c", "#74c476", "#9e9ac8", "#969696"];

async function drawMap(analysisId) {
  text($("map-status"), "Drawing the cohort map… (the first map of a gallery takes up to a minute)");
  try {
    const map = await (await api(`/api/v1/cohort-map?analysis_id=${encodeURIComponent(analysisId)}`)).json();
    const position = map.query_position;
    const canvas = $("map"), ctx = canvas.getContext("2d");
    const xs = map.points.map((p) => p.x).concat([position[0]]), ys = map.points.map((p) => p.y).concat([position[1]]);
    const x0 = Math.min(...xs), x1 = Math.max(...xs), y0 = Math.min(...ys), y1 = Math.max(...ys);
    const sx = (x) => 20 + (x - x0) / ((x1 - x0) || 1) * (canvas.width - 40);
    const sy = (y) => canvas.height - 20 - (y - y0) / ((y1 - y0) || 1) * (canvas.height - 40);
    const groups = [...new Set(map.points.map((p) => p.disorder))].sort();
    const colour = Object.fromEntries(groups.map((g, i) => [g, PALETTE[i % PALETTE.length]]));
    ctx.clearRect(0, 0, canvas.width, canvas.height);
    for (const p of map.points) { ctx.fillStyle = colour[p.disorder]; ctx.beginPath(); ctx.arc(sx(p.x), sy(p.y), 3.5, 0, 7); ctx.fill(); }
    ctx.fillStyle = "gold"; ctx.strokeStyle = "#000"; ctx.beginPath();
    for (let k = 0; k < 10; k++) { const a = Math.PI / 5 * k - Math.PI / 2, r = k % 2 ? 5 : 11; ctx.lineTo(sx(position[0]) + r * Math.cos(a), sy(position[1]) + r * Math.sin(a)); }
    ctx.closePath(); ctx.fill(); ctx.stroke();
    const legend = $("map-legend"); legend.innerHTML = "";
    for (const g of groups) {
      const row = document.createElement("div"), dot = document.createElement("span");
      dot.style.background = colour[g]; row.appendChild(dot);
      row.appendChild(document.createTextNode(((catalogue[g] || {}).name || g)));
      legend.appendChild(row);
    }
    const placed = map.placed_by_transform ? ` (${map.placed_by_transform} added since the layout was fitted are placed on it; a refit is running)` : "";
    text($("map-status"), `${map.points.length} gallery cases${placed}; ★ = this radiograph.`);
  } catch (e) {
    text($("map-status"), `Map not available: ${e.message}`);
  }
}

$("analyse-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  text($("analyse-error"), "");
  const file = $("image").files[0];
  if (!file) { text($("analyse-error"), "Choose a radiograph first."); return; }
  const form = new FormData();
  form.append("image", file);
  if ($("sex").value) form.append("sex", $("sex").value);
  const y = $("age-years").value, m = $("age-extra-months").value;
  if (y !== "" || m !== "") form.append("age_months", String(12 * Number(y || 0) + Number(m || 0)));
  if ($("hpo-terms").value.trim()) form.append("hpo", idsOf($("hpo-terms").value).join(","));
  if ($("hpo-excluded").value.trim()) form.append("hpo_excluded", idsOf($("hpo-excluded").value).join(","));
  if ($("candidate-genes").value.trim()) form.append("candidate_genes", $("candidate-genes").value);
  $("analyse-button").disabled = true;
  text($("analyse-status"), "Analysing… (a few seconds)");
  try {
    const result = await (await api("/api/v1/analyses", { method: "POST", body: form })).json();
    renderResult(result);
    text($("analyse-status"), "Done.");
  } catch (e) {
    $("result").hidden = true;
    text($("analyse-status"), "");
    text($("analyse-error"), e.message);
  } finally {
    $("analyse-button").disabled = false;
  }
});

$("add-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  if (!currentAnalysis) return;
  text($("add-error"), "");
  const payload = { analysis_id: currentAnalysis.analysis_id, disorder: $("add-disorder").value };
  if ($("add-gene").value.trim()) payload.gene = $("add-gene").value.trim();
  if ($("add-patient").value.trim()) payload.patient_id = $("add-patient").value.trim();
  try {
    const added = await (await api("/api/v1/cases", {
      method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(payload),
    })).json();
    text($("add-status"), `Added as case ${added.case_id} (${added.disorder_name}).`);
    const stats = await (await api("/api/v1/gallery/stats")).json();
    text($("gallery-size"), stats.cases);
  } catch (e) {
    text($("add-error"), e.message);
  }
});

if (key) signIn(key).catch(() => { sessionStorage.removeItem("b2g-key"); key = ""; });
