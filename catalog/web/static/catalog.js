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

  const review = document.getElementById("review");
  if (!review) return;
  const status = document.getElementById("status");

  function show(image, history, message) {
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
    status.className = "status done";
  }

  async function decide(action, label) {
    if (!csrf) {
      status.textContent = "Read only: open the URL with the token the server printed to decide.";
      status.className = "status refused";
      return;
    }
    const by = reviewer(true);
    if (!by) return;
    status.textContent = "…";
    status.className = "status";
    const body = {action: action, dataset: review.dataset.dataset, split: review.dataset.split,
                  index: Number(review.dataset.index), by: by};
    if (label !== undefined) body.label = label;
    const response = await fetch("/api/decide", {
      method: "POST", credentials: "same-origin",
      headers: {"Content-Type": "application/json", "X-CSRF-Token": csrf},
      body: JSON.stringify(body),
    });
    const answer = await response.json();
    if (!response.ok) {
      status.textContent = answer.error;
      status.className = "status refused";
      return;
    }
    show(answer.image, answer.history, answer.summary);
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
