// The compare view: the card's pair side by side at full resolution, zoomed and panned in step.
//
// "Same instance or not" is decided on details (a logo, a seam, a scratch), so both panes always show the
// same part of their image at the same zoom: one transform, applied to both. The deck script (review.js)
// asks for the view with a "review:compare" event and ignores every key while body has the class
// "comparing"; this script then handles its own keys. Everything it needs comes from the card's markup
// (the JSON <script class="compare-data"> rendered by the compare_data template tag), and the originals
// are only requested here, when the view opens.
(() => {
  "use strict";

  const root = document.getElementById("compare");
  if (!root) return;
  const config = JSON.parse(document.getElementById("review-config")?.textContent || "{}");
  const openKey = (config.keys && config.keys.compare) || "v";
  const paused = document.getElementById("paused");
  const panes = [...root.querySelectorAll(".compare-pane")];
  const labels = [...root.querySelectorAll(".compare-label")];
  const pairList = root.querySelector(".compare-pairs");
  const pairCount = root.querySelector(".compare-pair-count");
  const grid = root.querySelector(".compare-grid");
  const sim = root.querySelector(".compare-sim");
  const zoomText = root.querySelector(".compare-zoom");
  const swappedText = root.querySelector(".compare-swapped");

  const ZOOM_STEP = 1.25;
  const PAN_STEP = 60; // screen pixels per arrow key press; Shift pans four times as far
  const PANE_PADDING = 12; // room around a fitted image, so its edges stay visible
  const STATUS_ROOM = 34; // the status pill's strip at the top of the panes, kept clear of a fitted image
  const PIXELATED_FROM = 4; // screen pixels per image pixel from which pixels are drawn as squares

  let card = null;
  let data = null;
  let images = new Map(); // image id -> {side, id, full, thumb, width, height, title}
  let cardScale = new Map(); // image id -> the largest scale the card showed it at
  let shown = [null, null]; // image id per side (0 = A, 1 = B)
  let pairIndex = -1; // the pair on screen, or -1 for images picked one by one
  let swapped = false;
  let zoom = 1; // relative to fitting the pane; both panes share it
  let zoomMin = 1;
  let zoomMax = 8;
  let panX = 0;
  let panY = 0;
  let drag = null;
  let pendingPair = null; // the flagged pair whose thumbnail was clicked, until the deck asks to open

  // --- opening and closing ------------------------------------------------------------------------------

  function isOpen() {
    return !root.hidden;
  }

  function open(target, imageId) {
    const script = target && target.querySelector("script.compare-data");
    if (!script) return;
    card = target;
    data = JSON.parse(script.textContent);
    images = new Map();
    data.sides.forEach((side, index) => {
      for (const image of side.images) if (!images.has(image.id)) images.set(image.id, { ...image, side: index });
    });
    cardScale = measureCard(card);
    swapped = false;
    const clicked = imageId === null || imageId === undefined ? null : Number(imageId);
    const pair = pendingPair;
    pendingPair = null;
    if (pair !== null && data.pairs[pair] && data.pairs[pair].slice(0, 2).includes(clicked)) {
      showPair(pair);
    } else if (clicked !== null && images.has(clicked)) {
      showImage(clicked);
    } else {
      showPair(0);
    }
    buildPairList();
    buildGrid();
    grid.hidden = true;
    root.hidden = false;
    document.body.classList.add("comparing");
    fitAndRender(true);
  }

  function close() {
    root.hidden = true;
    grid.hidden = true;
    document.body.classList.remove("comparing");
    for (const pane of panes) {
      const img = pane.querySelector("img");
      img.removeAttribute("src");
      img.dataset.image = "";
    }
    card = null;
    data = null;
  }

  // The scale each image was shown at on the card: the view never shows it smaller. Gallery thumbnails are
  // cropped to fill their square (object-fit: cover), the featured image is fitted whole.
  function measureCard(target) {
    const scales = new Map();
    for (const img of target.querySelectorAll("img[data-image]")) {
      const image = images.get(Number(img.dataset.image));
      const rect = img.getBoundingClientRect();
      if (!image || !rect.width) continue;
      const pick = getComputedStyle(img).objectFit === "cover" ? Math.max : Math.min;
      const scale = pick(rect.width / image.width, rect.height / image.height);
      scales.set(image.id, Math.max(scales.get(image.id) || 0, scale));
    }
    return scales;
  }

  // --- what is shown --------------------------------------------------------------------------------------

  function firstOf(side) {
    const pair = data.pairs[0];
    if (pair) return pair[side];
    const list = data.sides[side].images;
    return list.length ? list[0].id : null;
  }

  function showPair(index) {
    if (!data.pairs.length) {
      shown = [firstOf(0), firstOf(1)];
      pairIndex = -1;
      return;
    }
    pairIndex = Math.max(0, Math.min(index, data.pairs.length - 1));
    shown = [data.pairs[pairIndex][0], data.pairs[pairIndex][1]];
  }

  // An image clicked on the card: the best pair it belongs to, or the image against the other side's first.
  function showImage(id) {
    const index = data.pairs.findIndex((pair) => pair[0] === id || pair[1] === id);
    if (index >= 0) {
      showPair(index);
      return;
    }
    const side = images.get(id).side;
    shown = side === 0 ? [id, firstOf(1)] : [firstOf(0), id];
    pairIndex = findPair();
  }

  function findPair() {
    return data.pairs.findIndex((pair) => pair[0] === shown[0] && pair[1] === shown[1]);
  }

  function sideInPane(pane) {
    return swapped ? 1 - pane : pane;
  }

  // Each image is sized to fit its pane (small originals are scaled up); zoom and pan are then one transform
  // shared by both panes. The smallest zoom keeps each image at least as large as the card showed it.
  function fitAndRender(reset) {
    const paneWidth = panes[0].clientWidth - 2 * PANE_PADDING;
    const paneHeight = panes[0].clientHeight - 2 * PANE_PADDING - STATUS_ROOM;
    let smallestFit = Infinity;
    zoomMin = 1;
    for (const id of shown) {
      const image = images.get(id);
      if (!image) continue;
      image.fit = Math.min(paneWidth / image.width, paneHeight / image.height);
      smallestFit = Math.min(smallestFit, image.fit);
      zoomMin = Math.max(zoomMin, (cardScale.get(id) || 0) / image.fit);
    }
    // Far enough in to see single pixels of the larger original as 16-pixel squares.
    zoomMax = Math.max(zoomMin * 4, smallestFit === Infinity ? 8 : 16 / smallestFit);
    if (reset) {
      zoom = zoomMin;
      panX = 0;
      panY = 0;
    }
    zoom = Math.min(zoomMax, Math.max(zoomMin, zoom));
    render();
  }

  function render() {
    if (!data) return;
    clampPan();
    const [x, y] = [panX, panY].map((value) => Math.round(value * 10) / 10);
    const transform = `translate(-50%, -50%) translate(${x}px, ${y}px) scale(${zoom.toFixed(4)})`;
    panes.forEach((pane, index) => {
      const side = sideInPane(index);
      const image = images.get(shown[side]);
      const img = pane.querySelector("img");
      pane.dataset.side = side ? "B" : "A";
      pane.querySelector(".compare-empty").hidden = Boolean(image);
      img.hidden = !image;
      if (image) {
        if (img.dataset.image !== String(image.id)) {
          pane.classList.add("loading");
          img.onload = () => pane.classList.remove("loading");
          img.src = image.full;
          img.dataset.image = String(image.id);
          img.alt = `${data.sides[side].label}: image #${image.id}`;
        }
        img.style.width = `${image.width * image.fit}px`;
        img.style.height = `${image.height * image.fit}px`;
        img.style.transform = transform;
        img.classList.toggle("pixelated", zoom > zoomMin && image.fit * zoom >= PIXELATED_FROM);
      }
      renderLabel(labels[index], side, image);
    });
    const pair = data.pairs[pairIndex];
    // Mined pairs have a similarity; an image picked by hand from a mined card has none ("–").
    const known = data.pairs.some((item) => item[2] !== null);
    sim.hidden = !known;
    sim.textContent = pair && pair[2] !== null ? `similarity ${pair[2].toFixed(3)}` : "similarity –";
    zoomText.textContent = zoom <= zoomMin + 1e-6 ? "fit" : `zoom ${(zoom / zoomMin).toFixed(1)}×`;
    swappedText.hidden = !swapped;
    root.classList.toggle("swapped", swapped);
    pairCount.textContent = data.pairs.length
      ? `pair ${pairIndex >= 0 ? pairIndex + 1 : "–"} of ${data.pairs.length}`
      : "no pair to step through";
    pairList.querySelectorAll("button").forEach((button, index) => {
      button.setAttribute("aria-current", index === pairIndex ? "true" : "false");
    });
    grid.querySelectorAll("[data-image]").forEach((item) => {
      item.classList.toggle("current", shown.includes(Number(item.dataset.image)));
    });
  }

  function renderLabel(label, side, image) {
    const info = data.sides[side];
    label.dataset.side = info.label;
    label.querySelector(".compare-tag").textContent = info.label;
    label.querySelector(".compare-heading").textContent = info.heading;
    label.querySelector(".compare-heading").title = info.heading;
    const parts = [];
    if (image) {
      if (!info.heading.toLowerCase().includes(image.title.toLowerCase())) parts.push(image.title);
      parts.push(`image #${image.id}`, `${image.width} × ${image.height} px`, `shown ×${(image.fit * zoom).toFixed(1)}`);
    }
    label.querySelector(".compare-meta").textContent = parts.join(" · ");
  }

  // Keeps some of the images in view: the pan stops where the larger one's edge meets the pane's middle.
  function clampPan() {
    let halfWidth = 0;
    let halfHeight = 0;
    for (const id of shown) {
      const image = images.get(id);
      if (!image) continue;
      halfWidth = Math.max(halfWidth, (image.width * image.fit * zoom) / 2);
      halfHeight = Math.max(halfHeight, (image.height * image.fit * zoom) / 2);
    }
    panX = Math.max(-halfWidth, Math.min(halfWidth, panX));
    panY = Math.max(-halfHeight, Math.min(halfHeight, panY));
  }

  // Zooms by ``factor`` keeping the point (x, y) of the pane, relative to its centre, where it is.
  function zoomBy(factor, x = 0, y = 0) {
    const next = Math.min(zoomMax, Math.max(zoomMin, zoom * factor));
    const ratio = next / zoom;
    panX = x - (x - panX) * ratio;
    panY = y - (y - panY) * ratio;
    zoom = next;
    render();
  }

  function panBy(dx, dy) {
    panX += dx;
    panY += dy;
    render();
  }

  function stepPair(delta) {
    if (!data.pairs.length) return;
    const count = data.pairs.length;
    const from = pairIndex < 0 ? (delta > 0 ? -1 : 0) : pairIndex;
    showPair((from + delta + count) % count);
    fitAndRender(true);
  }

  function goToPair(index) {
    if (index >= data.pairs.length) return;
    showPair(index);
    fitAndRender(true);
  }

  function flicker() {
    swapped = !swapped;
    render();
  }

  // --- the pair list and the grid -------------------------------------------------------------------------

  function buildPairList() {
    pairList.replaceChildren();
    data.pairs.forEach((pair, index) => {
      const item = document.createElement("li");
      const button = document.createElement("button");
      button.type = "button";
      button.dataset.pair = String(index);
      const number = document.createElement("kbd");
      number.textContent = String(index + 1);
      // A mined pair reads as its similarity; otherwise as the image that changes from pair to pair.
      const varying = data.pairs.every((other) => other[0] === pair[0]) ? pair[1] : pair[0];
      button.append(number, pair[2] === null ? ` #${varying}` : ` ${pair[2].toFixed(3)}`);
      button.title = `pair ${index + 1}: image #${pair[0]} and image #${pair[1]}`;
      item.appendChild(button);
      pairList.appendChild(item);
    });
  }

  function buildGrid() {
    grid.querySelectorAll("section").forEach((section, side) => {
      const info = data.sides[side];
      section.dataset.label = info.label;
      const count = `${info.images.length} image${info.images.length === 1 ? "" : "s"}`;
      const hint = document.createElement("small");
      hint.textContent = `click one to show it on side ${info.label}`;
      const title = document.createElement("span");
      title.textContent = `${info.heading} · ${count}`;
      section.querySelector("h3").replaceChildren(title, hint);
      const list = section.querySelector("ul");
      list.replaceChildren();
      for (const image of info.images) {
        const item = document.createElement("li");
        const button = document.createElement("button");
        button.type = "button";
        button.dataset.image = String(image.id);
        button.dataset.side = String(side);
        button.title = `Show image #${image.id} on side ${info.label}`;
        const img = document.createElement("img");
        img.src = image.thumb;
        img.loading = "lazy";
        img.alt = `image #${image.id}`;
        const caption = document.createElement("span");
        caption.textContent = `#${image.id} · ${image.width}×${image.height}`;
        button.append(img, caption);
        item.appendChild(button);
        list.appendChild(item);
      }
    });
  }

  function toggleGrid() {
    grid.hidden = !grid.hidden;
    render();
  }

  function pickFromGrid(button) {
    const side = Number(button.dataset.side);
    shown[side] = Number(button.dataset.image);
    pairIndex = findPair();
    grid.hidden = true;
    fitAndRender(true);
  }

  // --- input ----------------------------------------------------------------------------------------------

  const keyActions = {
    "[": () => stepPair(-1),
    "]": () => stepPair(1),
    "+": () => zoomBy(ZOOM_STEP),
    "=": () => zoomBy(ZOOM_STEP),
    "-": () => zoomBy(1 / ZOOM_STEP),
    _: () => zoomBy(1 / ZOOM_STEP),
    0: () => fitAndRender(true),
    f: flicker,
    g: toggleGrid,
  };

  // Capture phase on document, so the deck's own listener never sees the keys used here.
  document.addEventListener(
    "keydown",
    (event) => {
      if (!isOpen()) return;
      if (paused && !paused.hidden) return; // the deck reloads the page on any key
      if (card && !card.isConnected) {
        close(); // the card went away (its lease was lost) while the view was open
        return;
      }
      if (event.ctrlKey || event.metaKey || event.altKey) return;
      const key = event.key.length === 1 ? event.key.toLowerCase() : event.key;
      const step = event.shiftKey ? PAN_STEP * 4 : PAN_STEP;
      let action = null;
      if (key === "Escape") action = () => (grid.hidden ? close() : toggleGrid());
      else if (key === openKey) action = close;
      else if (/^[1-9]$/.test(key)) action = () => goToPair(Number(key) - 1);
      else if (key === "ArrowLeft") action = () => panBy(step, 0);
      else if (key === "ArrowRight") action = () => panBy(-step, 0);
      else if (key === "ArrowUp") action = () => panBy(0, step);
      else if (key === "ArrowDown") action = () => panBy(0, -step);
      else if (key === " ") action = flicker;
      else action = keyActions[key] || null;
      if (!action) return;
      event.preventDefault();
      event.stopPropagation();
      // Holding a zoom or pan key repeats it; holding the flicker or a pair key does not flicker.
      if (event.repeat && !/^(Arrow|[+=_-])/.test(key)) return;
      action();
    },
    true,
  );

  document.addEventListener("review:compare", (event) => {
    if (isOpen()) return;
    open(event.detail.card, event.detail.image);
  });

  // A click on a flagged pair's thumbnail: remember which pair, before the deck asks to open the view.
  document.addEventListener(
    "click",
    (event) => {
      const item = event.target.closest(".review-card .flagged-pairs [data-pair]");
      pendingPair = item ? Number(item.dataset.pair) : null;
    },
    true,
  );

  root.addEventListener("click", (event) => {
    // A clicked button keeps no focus: Space and Enter belong to the view's keys, not to the last button.
    event.target.closest("button")?.blur();
    if (event.target.closest(".compare-close")) close();
    const pairButton = event.target.closest(".compare-pairs button");
    if (pairButton) goToPair(Number(pairButton.dataset.pair));
    const gridButton = event.target.closest(".compare-grid button[data-image]");
    if (gridButton) pickFromGrid(gridButton);
  });

  function paneCentreOffset(pane, event) {
    const rect = pane.getBoundingClientRect();
    return [event.clientX - rect.left - rect.width / 2, event.clientY - rect.top - rect.height / 2];
  }

  for (const pane of panes) {
    pane.addEventListener(
      "wheel",
      (event) => {
        event.preventDefault();
        const pixels = event.deltaMode === 1 ? event.deltaY * 16 : event.deltaY;
        zoomBy(Math.exp(-pixels * 0.0015), ...paneCentreOffset(pane, event));
      },
      { passive: false },
    );
    pane.addEventListener("pointerdown", (event) => {
      if (event.button !== 0) return;
      pane.setPointerCapture(event.pointerId);
      drag = { x: event.clientX, y: event.clientY, pointer: event.pointerId };
      root.classList.add("dragging");
    });
    pane.addEventListener("pointermove", (event) => {
      if (!drag || drag.pointer !== event.pointerId) return;
      const dx = event.clientX - drag.x;
      const dy = event.clientY - drag.y;
      drag.x = event.clientX;
      drag.y = event.clientY;
      panBy(dx, dy);
    });
    const stop = () => {
      drag = null;
      root.classList.remove("dragging");
    };
    pane.addEventListener("pointerup", stop);
    pane.addEventListener("pointercancel", stop);
    pane.addEventListener("dblclick", (event) => zoomBy(ZOOM_STEP * ZOOM_STEP, ...paneCentreOffset(pane, event)));
  }

  window.addEventListener("resize", () => {
    if (isOpen()) fitAndRender(false);
  });
})();
