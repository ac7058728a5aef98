// The map: points on a canvas coloured by label or suspect score; a box dragged over
// them opens those images in the grid (/grid?ids=...). No build step, no CDN.
"use strict";
(function () {
  const canvas = document.getElementById("map");
  const holder = document.getElementById("map-data");
  if (!canvas || !holder) return;
  const data = JSON.parse(holder.textContent);
  const colour = holder.dataset.colour;
  const p = data.points;
  const n = p.id.length;
  const ctx = canvas.getContext("2d");
  const W = canvas.width, H = canvas.height, PAD = 12;
  const PALETTE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"];
  const px = (i) => PAD + p.x[i] * (W - 2 * PAD);
  const py = (i) => PAD + (1 - p.y[i]) * (H - 2 * PAD);

  function labelColour(label) { return label < 0 ? "#999" : PALETTE[label % PALETTE.length]; }
  function scoreColour(s) {
    if (s <= 0) return "rgba(150,150,150,0.35)";
    const t = Math.min(1, s);
    return "rgb(" + Math.round(200 + 55 * t) + "," + Math.round(160 - 140 * t) + ",0)";
  }
  function draw(box) {
    ctx.clearRect(0, 0, W, H);
    const order = Array.from({ length: n }, (_, i) => i);
    if (colour === "score") order.sort((a, b) => p.score[a] - p.score[b]); // suspects on top
    for (const i of order) {
      ctx.fillStyle = colour === "score" ? scoreColour(p.score[i]) : labelColour(p.label[i]);
      const r = colour === "score" && p.score[i] > 0 ? 3 : 1.6;
      ctx.fillRect(px(i) - r / 2, py(i) - r / 2, r, r);
    }
    if (box) {
      ctx.strokeStyle = "#2f5fd0";
      ctx.setLineDash([4, 3]);
      ctx.strokeRect(box.x0, box.y0, box.x1 - box.x0, box.y1 - box.y0);
      ctx.setLineDash([]);
    }
  }
  const legend = document.getElementById("legend");
  if (colour === "label") {
    const labels = Array.from(new Set(p.label)).sort((a, b) => a - b);
    for (const l of labels) {
      const s = document.createElement("span");
      const dot = document.createElement("i");
      dot.style.background = labelColour(l);
      s.appendChild(dot);
      s.appendChild(document.createTextNode(l < 0 ? "unlabeled" : (data.label_names[String(l)] || String(l))));
      legend.appendChild(s);
    }
  } else {
    const suspected = p.score.filter((s) => s > 0).length;
    legend.textContent = suspected + " suspects drawn (orange to red: higher score); grey: not suspected.";
  }
  draw(null);

  let start = null;
  function at(event) {
    const r = canvas.getBoundingClientRect();
    return { x: (event.clientX - r.left) * (W / r.width), y: (event.clientY - r.top) * (H / r.height) };
  }
  canvas.addEventListener("mousedown", (event) => { start = at(event); event.preventDefault(); });
  canvas.addEventListener("mousemove", (event) => {
    if (!start) return;
    const q = at(event);
    draw({ x0: Math.min(start.x, q.x), y0: Math.min(start.y, q.y), x1: Math.max(start.x, q.x), y1: Math.max(start.y, q.y) });
  });
  window.addEventListener("mouseup", (event) => {
    if (!start) return;
    const q = at(event);
    const box = { x0: Math.min(start.x, q.x), y0: Math.min(start.y, q.y), x1: Math.max(start.x, q.x), y1: Math.max(start.y, q.y) };
    start = null;
    const inside = [];
    for (let i = 0; i < n; i++) {
      const x = px(i), y = py(i);
      if (x >= box.x0 && x <= box.x1 && y >= box.y0 && y <= box.y1) inside.push(i);
    }
    const status = document.getElementById("map-status");
    if (!inside.length) { draw(null); status.textContent = "No point in that box."; return; }
    inside.sort((a, b) => p.score[b] - p.score[a]);
    const ids = inside.slice(0, 1000).map((i) => p.id[i]);
    status.textContent = inside.length + " images chosen" + (inside.length > 1000 ? ", opening the first 1,000" : "") + "…";
    window.location.href = "/grid?ids=" + ids.join(",");
  });
  // A better layout is being computed: ask every 5 s, reload once it is ready.
  const pending = document.getElementById("map-pending");
  if (pending) {
    const poll = () => fetch(pending.dataset.poll, { credentials: "same-origin" })
      .then((r) => r.json())
      .then((d) => { if (d.pending) setTimeout(poll, 5000); else window.location.reload(); })
      .catch(() => setTimeout(poll, 15000));
    setTimeout(poll, 5000);
  }
})();
