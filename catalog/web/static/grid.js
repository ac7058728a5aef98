// The grid: pick images (the corner box, shift-click for a range, a box dragged over
// them, or all on the page), then tag, untag, exclude, include or relabel them as one
// decision set (POST /api/decide-set), with Undo for the whole set. No build step.
"use strict";
(function () {
  const grid = document.getElementById("grid");
  const bar = document.getElementById("actions");
  if (!grid || !bar) return;
  const csrf = (document.querySelector('meta[name="csrf-token"]') || {}).content || "";
  const cells = Array.from(grid.querySelectorAll(".cell"));
  const picked = new Set();
  const status = document.getElementById("set-status");
  const undoButton = document.getElementById("undo-set");
  let anchor = null;
  let swallowClick = false;
  let lastSet = null;

  cells.forEach((cell, i) => {
    cell.dataset.pos = String(i);
    const box = document.createElement("span");
    box.className = "pick";
    box.title = "select";
    cell.appendChild(box);
  });

  function show() {
    cells.forEach((cell) => cell.classList.toggle("picked", picked.has(cell.dataset.ref)));
    document.getElementById("picked").textContent = picked.size + " selected";
  }
  function toggle(cell) {
    const ref = cell.dataset.ref;
    if (picked.has(ref)) picked.delete(ref); else picked.add(ref);
    anchor = Number(cell.dataset.pos);
  }
  function range(to) {
    const from = anchor === null ? to : anchor;
    for (let i = Math.min(from, to); i <= Math.max(from, to); i++) picked.add(cells[i].dataset.ref);
    anchor = to;
  }

  grid.addEventListener("click", (event) => {
    const cell = event.target.closest(".cell");
    if (swallowClick) { swallowClick = false; event.preventDefault(); return; }
    if (!cell || event.ctrlKey || event.metaKey) return; // ctrl-click opens the image
    const onBox = event.target.classList.contains("pick");
    if (event.shiftKey) range(Number(cell.dataset.pos));
    else if (onBox || picked.size) toggle(cell);
    else return; // nothing picked yet: a click opens the image page
    event.preventDefault();
    show();
  });

  // A box dragged over the grid picks every image it touches.
  let start = null;
  let lasso = null;
  grid.addEventListener("mousedown", (event) => {
    if (event.button !== 0) return;
    event.preventDefault(); // no native drag of the link or its picture
    start = { x: event.clientX, y: event.clientY };
  });
  window.addEventListener("mousemove", (event) => {
    if (!start) return;
    const w = Math.abs(event.clientX - start.x), h = Math.abs(event.clientY - start.y);
    if (!lasso && w + h < 8) return;
    if (!lasso) { lasso = document.createElement("div"); lasso.className = "lasso"; document.body.appendChild(lasso); }
    Object.assign(lasso.style, {
      left: Math.min(event.clientX, start.x) + "px", top: Math.min(event.clientY, start.y) + "px",
      width: w + "px", height: h + "px",
    });
  });
  window.addEventListener("mouseup", (event) => {
    if (!start) return;
    if (lasso) {
      const box = lasso.getBoundingClientRect();
      for (const cell of cells) {
        const r = cell.getBoundingClientRect();
        if (r.right >= box.left && r.left <= box.right && r.bottom >= box.top && r.top <= box.bottom) {
          picked.add(cell.dataset.ref);
        }
      }
      lasso.remove();
      lasso = null;
      swallowClick = grid.contains(event.target);
      show();
    }
    start = null;
  });

  document.getElementById("pick-all").addEventListener("click", () => {
    cells.forEach((cell) => picked.add(cell.dataset.ref));
    show();
  });
  document.getElementById("pick-none").addEventListener("click", () => { picked.clear(); anchor = null; show(); });

  function reviewer() {
    const COOKIE = "catalog_reviewer";
    const found = document.cookie.split("; ").find((c) => c.startsWith(COOKIE + "="));
    let name = found ? decodeURIComponent(found.slice(COOKIE.length + 1)) : "";
    if (!name) {
      name = (window.prompt("Your name, recorded with each decision:") || "").trim();
      if (name) document.cookie = COOKIE + "=" + encodeURIComponent(name) + "; path=/; SameSite=Strict; max-age=31536000";
    }
    return name;
  }

  function badge(cls, text, title) {
    const b = document.createElement("span");
    b.className = "badge " + cls;
    b.textContent = text;
    if (title) b.title = title;
    return b;
  }
  function redraw(image) {
    const cell = cells.find((c) => c.dataset.ref === image.split + ":" + image.index);
    if (!cell) return;
    cell.classList.toggle("relabelled", image.relabelled);
    cell.classList.toggle("excluded", image.excluded);
    cell.querySelector(".cap b").textContent = image.label === null ? "–" : String(image.label);
    const badges = cell.querySelector(".badges");
    badges.textContent = "";
    if (image.relabelled) badges.appendChild(badge("relabel", image.original_label + "→" + image.label));
    if (image.excluded) badges.appendChild(badge("excl", "excluded"));
    for (const t of image.tags) badges.appendChild(badge("tagged", t));
    if (image.suspect) {
      badges.appendChild(badge("susp", "?" + image.suspect.suggested + " " + image.suspect.score.toFixed(2),
        "looks like " + image.suspect.suggested));
    }
  }

  async function send(body) {
    if (!csrf) {
      status.textContent = "Read only: open the URL with the token the server printed to decide.";
      status.className = "status refused";
      return null;
    }
    const by = reviewer();
    if (!by) return null;
    status.textContent = "…";
    status.className = "status";
    const response = await fetch("/api/decide-set", {
      method: "POST",
      headers: { "Content-Type": "application/json", "X-CSRF-Token": csrf },
      body: JSON.stringify(Object.assign({ by: by }, body)),
    });
    const answer = await response.json().catch(() => ({ error: "HTTP " + response.status }));
    if (!response.ok) {
      status.textContent = answer.error || "HTTP " + response.status;
      status.className = "status refused";
      return null;
    }
    answer.images.forEach(redraw);
    status.textContent = answer.summary;
    status.className = "status done";
    return answer;
  }

  bar.querySelectorAll("button[data-action]").forEach((button) => {
    button.addEventListener("click", async () => {
      if (!picked.size) {
        status.textContent = "Select images first (corner box, shift-click, drag a box, or all on page).";
        status.className = "status refused";
        return;
      }
      const action = button.dataset.action;
      const images = Array.from(picked);
      const dataset = cells.find((c) => picked.has(c.dataset.ref)).dataset.dataset;
      const body = { action: action, images: images, dataset: dataset };
      if (action === "tag" || action === "untag") body.tag = document.getElementById("set-tag").value.trim();
      if (action === "relabel") body.label = document.getElementById("set-label").value.trim();
      if (/^\d+$/.test(body.label || "")) body.label = Number(body.label);
      const answer = await send(body);
      if (answer && answer.set) {
        lastSet = { set: answer.set, images: images, dataset: dataset };
        undoButton.hidden = false;
        undoButton.textContent = "Undo set #" + answer.set;
      }
    });
  });
  undoButton.addEventListener("click", async () => {
    if (!lastSet) return;
    const answer = await send({ action: "undo", set: lastSet.set, images: lastSet.images, dataset: lastSet.dataset });
    if (answer) { lastSet = null; undoButton.hidden = true; }
  });
})();
