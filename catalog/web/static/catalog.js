// mnist-catalog web view: the reviewer's name, and review mode's keys. No build step.
"use strict";
(function () {
  const COOKIE = "catalog_reviewer";
  const csrf = document.querySelector('meta[name="csrf-token"]').content;

  function reviewer(ask) {
    const found = document.cookie.split("; ").find((c) => c.startsWith(COOKIE + "="));
    let name = found ? decodeURIComponent(found.slice(COOKIE.length + 1)) : "";
    if (!name && ask) {
      name = (window.prompt("Your name, recorded with each decision:") || "").trim();
      if (name) {
        document.cookie = COOKIE + "=" + encodeURIComponent(name) + "; path=/; SameSite=Strict; max-age=31536000";
        const shown = document.getElementById("who");
        if (shown) shown.textContent = name;
      }
    }
    return name;
  }

  const who = document.getElementById("who");
  if (who) who.textContent = reviewer(false) || "(name asked at the first decision)";

  // Neighbours that follow: the page answered before the neighbour index was built.
  function follow(box) {
    fetch(box.dataset.follow, {credentials: "same-origin"})
      .then((response) => response.json())
      .then((answer) => {
        if (!answer.ready) { window.setTimeout(() => follow(box), 1000); return; }
        box.textContent = "";
        for (const n of answer.neighbours) {
          const link = document.createElement("a");
          link.href = n.url;
          link.title = n.split + ":" + n.index + " distance " + n.distance;
          const img = document.createElement("img");
          img.className = "pixelated";
          img.src = n.thumb; img.width = 84; img.height = 84; img.alt = "";
          const label = document.createElement("span");
          label.textContent = n.label;
          link.append(img, label);
          box.appendChild(link);
        }
        delete box.dataset.follow;
      })
      .catch(() => window.setTimeout(() => follow(box), 2000));
  }
  document.querySelectorAll(".neighbours[data-follow]").forEach(follow);

  const review = document.getElementById("review");
  if (!review) return;
  const status = document.getElementById("status");

  function show(image, history, message, kind) {
    document.getElementById("current").textContent = image.label_name;
    document.getElementById("excluded").hidden = !image.excluded;
    document.getElementById("tags").innerHTML = image.tags
      .map((t) => '<span class="tag"></span>').join("");
    document.querySelectorAll("#tags .tag").forEach((el, i) => { el.textContent = image.tags[i]; });
    const list = document.getElementById("history");
    list.innerHTML = "";
    for (const d of history) {
      const li = document.createElement("li");
      li.textContent = "#" + d.id + " " + d.action + (d.label !== null ? " → " + d.label : "") +
        (d.tag ? " " + d.tag : "") + " by " + d.by + (d.note ? " · " + d.note : "");
      list.appendChild(li);
    }
    status.textContent = message;
    status.className = "status " + (kind || "done");
  }

  function refused(message) {
    status.textContent = message;
    status.className = "status refused";
  }

  // The latest decision about the image this page shows: sent with every decision
  // as "seen", so one made meanwhile by someone else is answered 409, not overwritten.
  function seen() {
    return review.dataset.seen === "" ? null : Number(review.dataset.seen);
  }

  async function refresh() {
    const response = await fetch(review.dataset.imageUrl, {credentials: "same-origin"});
    if (!response.ok) return;
    const image = await response.json();
    review.dataset.seen = image.decision === null ? "" : String(image.decision);
    show(image, image.history, status.textContent, "refused");
  }

  async function send(action, label, by) {
    const body = {action: action, dataset: review.dataset.dataset, split: review.dataset.split,
                  index: Number(review.dataset.index), by: by, seen: seen()};
    if (label !== undefined) body.label = label;
    const response = await fetch("/api/decide", {
      method: "POST", credentials: "same-origin",
      headers: {"Content-Type": "application/json", "X-CSRF-Token": csrf},
      body: JSON.stringify(body),
    });
    let answer;
    try { answer = await response.json(); } catch (e) { answer = {error: "HTTP " + response.status}; }
    if (response.status === 409) {  // decided meanwhile by someone else: show theirs
      refused(answer.error);
      await refresh();
      return;
    }
    if (!response.ok) { refused(answer.error); return; }
    review.dataset.seen = answer.image.decision === null ? "" : String(answer.image.decision);
    show(answer.image, answer.history, answer.summary);
  }

  // Keys are queued: each decision is sent when the one before it is answered, so
  // answers apply in the order of the keys (a slow answer never overwrites a newer one)
  // and each carries the "seen" its predecessor's answer left.
  let queue = Promise.resolve();
  function decide(action, label) {
    if (!csrf) {
      refused(review.dataset.readOnly
        ? "Read only: this server was started with --read-only, nothing can be decided here."
        : "Read only here: open the URL with the token the server printed to decide.");
      return;
    }
    const by = reviewer(true);
    if (!by) return;
    status.textContent = "…";
    status.className = "status";
    queue = queue.then(() => send(action, label, by)).catch((e) => refused(String(e)));
  }

  document.addEventListener("keydown", (event) => {
    if (event.ctrlKey || event.metaKey || event.altKey) return;
    if (event.target instanceof HTMLInputElement) return;
    const key = event.key;
    if (key === "k") decide("keep");
    else if (key === "r") decide("relabel", Number(review.dataset.suggested));
    else if (/^[0-9]$/.test(key)) decide("relabel", Number(key));
    else if (key === "x") decide("exclude");
    else if (key === "u") decide("undo");
    else if (key === "ArrowRight" && review.dataset.next) window.location.href = review.dataset.next;
    else if (key === "ArrowLeft" && review.dataset.prev) window.location.href = review.dataset.prev;
    else return;
    event.preventDefault();
  });
})();
