/*
 * Viewers: figures a reader can play with. Each root element names its kind in data-viewer:
 *
 *   anagram  each sample turns by the view it was made for (hover, click or tap, Enter or Space)
 *   zoom     one slider steps back from the hybrids, down to the pixel-crisp far view
 *   compare  before and after, split by a slider
 *   scrub    a slider (with play and pause where it is a sampling run) over a series of frames,
 *            or over the root's own figures (a sweep's points)
 *
 * The page holds the still figure; a viewer puts its stage in the figure's place, so that without
 * scripts the figure is what a reader sees. data-viewer-src holds what the viewer shows (JSON,
 * written by the renderer); nothing is fetched but the images it names.
 */
(function () {
  "use strict";

  var reduced = window.matchMedia ? window.matchMedia("(prefers-reduced-motion: reduce)") : null;

  function make(tag, attrs, parent, text) {
    var node = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (name) {
      node.setAttribute(name, attrs[name]);
    });
    if (text !== undefined) {
      node.textContent = text;
    }
    if (parent) {
      parent.appendChild(node);
    }
    return node;
  }

  function slider(parent, label, max, value) {
    var box = make("label", { class: "viewer-slider" }, parent);
    make("span", { class: "viewer-slider-label" }, box, label);
    return make("input", { type: "range", min: "0", max: String(max), step: "1", value: String(value) }, box);
  }

  /* The still figure stays for readers without scripts; with them, the stage takes its place. */
  function place(root, stage) {
    var figure = root.querySelector("figure");
    if (!figure) {
      root.appendChild(stage);
      return;
    }
    Array.prototype.forEach.call(figure.children, function (child) {
      if (child.tagName !== "FIGCAPTION") {
        child.classList.add("viewer-still");
      }
    });
    figure.insertBefore(stage, figure.querySelector("figcaption"));
  }

  /* ---- anagram ---- */

  function anagram(root, spec) {
    var views = spec.views;
    var stage = make("div", { class: "viewer-stage" });
    make("p", { class: "viewer-hint" }, stage,
      "Point at a sample, tap it, or press Enter on it: it turns by " + views.join(", then ") + "." +
      (spec.items.some(function (item) { return item.confident; }) ?
        " Green frames: the classifier read every view confidently." : ""));
    var grid = null;
    var group = "";
    spec.items.forEach(function (item, i) {
      /* One row per anagram: its candidates one after another. */
      if (item.shows.join(" / ") !== group) {
        group = item.shows.join(" / ");
        var row = make("div", { class: "anagram-row", role: "group", "aria-label": "Anagram " + group }, stage);
        make("span", { class: "anagram-name" }, row, group);
        grid = make("div", { class: "anagram-grid" }, row);
      }
      var tile = make("button", { type: "button", "aria-pressed": "false", "data-turned": "",
        class: "anagram-tile" + (item.confident ? " confident" : "") }, grid);
      var img = make("img", { src: item.src, alt: "", class: "pixelated", draggable: "false" }, tile);
      var reading = make("span", { class: "anagram-reading", "aria-hidden": "true" }, tile);
      var state = 0; /* 0: as it is; k: under views[k - 1] */
      var hovered = false;
      function show() {
        var k = state || (hovered ? 1 : 0);
        var view = k ? views[k - 1] : "";
        img.className = "pixelated" + (view ? " turn-" + view : "");
        tile.setAttribute("data-turned", view);
        tile.setAttribute("aria-pressed", state ? "true" : "false");
        reading.textContent = k ? item.shows[k] + " (" + view + ")" : item.shows[0];
        tile.setAttribute("aria-label", "Sample " + (i + 1) + ": shows " + item.shows[k] +
          (view ? " under " + view : " as it is") +
          (item.confident ? " (read confidently in every view)" : "") + ". Press to turn it" +
          (views.length > 1 ? " to the next view." : "."));
      }
      tile.addEventListener("mouseenter", function () { hovered = true; show(); });
      tile.addEventListener("mouseleave", function () { hovered = false; show(); });
      /* A button clicks on Enter and Space as well as on a tap. */
      tile.addEventListener("click", function () {
        state = (state + 1) % (views.length + 1);
        hovered = false;
        show();
      });
      show();
    });
    place(root, stage);
    return true;
  }

  /* ---- zoom ---- */

  function zoom(root, spec) {
    var stage = make("div", { class: "viewer-stage" });
    var steps = 40;
    /* The controls stay in sight while the reader scrolls through the images. */
    var controls = make("div", { class: "viewer-controls" }, stage);
    var input = slider(controls, "Step back", steps, 0);
    var readout = make("output", { class: "viewer-readout", "aria-live": "polite" }, controls);
    var grid = make("div", { class: "zoom-grid" }, stage);
    var tiles = spec.items.map(function (item) {
      var tile = make("div", { class: "zoom-tile" }, grid);
      var box = make("div", { class: "zoom-box" }, tile);
      var near = make("img", { src: item.src, alt: "hybrid: " + item.close_shows + " up close, " +
        item.far_shows + " from afar", class: "zoom-near" }, box);
      var far = make("img", { src: item.far, alt: "", class: "zoom-far pixelated", "aria-hidden": "true" }, box);
      make("span", { class: "viewer-caption" }, tile, item.far_shows + " / " + item.close_shows);
      return { near: near, far: far, box: box };
    });
    function show() {
      var p = Number(input.value) / steps;
      /* Shrink geometrically, down to a far_scale-th of the image's own size: where its high
         frequencies fall below a screen pixel and the low ones are all that is left. */
      tiles.forEach(function (t) {
        var full = t.box.clientWidth || 112;
        var end = spec.size / spec.far_scale;
        var width = full * Math.pow(end / full, p);
        t.near.style.width = width.toFixed(2) + "px";
        /* Enlarged it is drawn as pixels; shrunk, it is filtered as an eye far away would. */
        t.near.classList.toggle("pixelated", width >= spec.size);
        var crisp = p >= 1 ? 1 : 0;
        t.far.style.opacity = String(crisp);
        t.near.style.opacity = String(1 - crisp);
      });
      var full = tiles.length ? tiles[0].box.clientWidth || 112 : 112;
      var away = Math.pow(full * spec.far_scale / spec.size, p);
      var text = p === 0 ? "close up: the fine detail shows the second digit" :
        p >= 1 ? "far away: the " + spec.far_size + "×" + spec.far_size +
          " view, as the classifier reads it, shows the first digit" :
          "stepping back: " + away.toFixed(1) + " times as far away as close up";
      readout.textContent = text;
      input.setAttribute("aria-valuetext", text);
      root.setAttribute("data-position", String(p));
    }
    input.addEventListener("input", show);
    place(root, stage);
    window.addEventListener("resize", show);
    show();
    return true;
  }

  /* ---- compare ---- */

  function compare(root, spec) {
    var stage = make("div", { class: "viewer-stage compare-grid" });
    spec.items.forEach(function (item, i) {
      var tile = make("div", { class: "compare-tile" }, stage);
      make("img", { src: item.after, alt: "after: inpainted", class: "pixelated compare-after" }, tile);
      var before = make("img", { src: item.before, alt: "before: the original with the hole",
        class: "pixelated compare-before" }, tile);
      var line = make("span", { class: "compare-line", "aria-hidden": "true" }, tile);
      var input = make("input", { type: "range", min: "0", max: "100", step: "1", value: "50",
        class: "compare-input", "aria-label": "Image " + (i + 1) + ": before (left) and after (right)" }, tile);
      function show() {
        var v = Number(input.value);
        before.style.clipPath = "inset(0 " + (100 - v) + "% 0 0)";
        line.style.left = v + "%";
        input.setAttribute("aria-valuetext", v + "% before, " + (100 - v) + "% after");
        tile.setAttribute("data-split", String(v));
      }
      input.addEventListener("input", show);
      show();
    });
    place(root, stage);
    make("p", { class: "viewer-hint" }, stage,
      "Drag across an image, or focus it and use the arrow keys: the original with its hole on the left, the filled image on the right.");
    return true;
  }

  /* ---- scrub ---- */

  function scrub(root, spec) {
    var stage = make("div", { class: "viewer-stage" });
    var frames, showFrame;
    if (spec) {
      /* A strip of frames per item, moved together. */
      frames = spec.items[0].steps;
      var grid = make("div", { class: "scrub-grid" }, stage);
      var strips = spec.items.map(function (item) {
        var tile = make("div", { class: "scrub-tile" }, grid);
        var box = make("div", { class: "scrub-box" }, tile);
        if (spec.width) {
          box.style.aspectRatio = spec.width + " / " + spec.height;
          box.style.width = Math.min(spec.width * 2, 640) + "px";
        }
        var strip = make("img", { src: item.src, alt: "", class: "pixelated scrub-strip" }, box);
        strip.style.width = 100 * item.steps.length + "%";
        if (item.name) {
          make("span", { class: "viewer-caption" }, tile, item.name);
        }
        return strip;
      });
      showFrame = function (k) {
        strips.forEach(function (strip) {
          strip.style.transform = "translateX(" + (-100 * k / frames.length) + "%)";
        });
        /* A sampling run's strip may hold some of its GIF's frames: each is named by its number there. */
        return (spec.param === "step" ? "step " + frames[k] + " of " + (spec.of || frames.length) : frames[k]);
      };
    } else {
      /* The root's own figures (a sweep's points), one at a time. */
      var points = Array.prototype.filter.call(root.children, function (c) {
        return c.tagName === "FIGURE";
      });
      if (points.length < 2) {
        return false;
      }
      frames = points.map(function (p) { return p.getAttribute("data-label") || ""; });
      root.parentNode.insertBefore(stage, root);
      showFrame = function (k) {
        points.forEach(function (p, j) { p.classList.toggle("viewer-hidden", j !== k); });
        var metrics = points[k].getAttribute("data-metrics");
        return frames[k] + (metrics ? " · " + metrics : "");
      };
    }
    var label = spec ? (spec.param === "step" ? "Sampling step" : spec.param) :
      (root.getAttribute("data-param") || "Point");
    var controls = make("div", { class: "viewer-controls" });
    stage.insertBefore(controls, stage.firstChild);
    var input = slider(controls, label, frames.length - 1, spec && spec.param === "step" ? frames.length - 1 : 0);
    var readout = make("output", { class: "viewer-readout", "aria-live": "polite" }, controls);
    function show() {
      var k = Number(input.value);
      var text = showFrame(k);
      readout.textContent = text;
      input.setAttribute("aria-valuetext", text);
      root.setAttribute("data-index", String(k));
    }
    input.addEventListener("input", show);
    if (spec && spec.play) {
      var timer = null;
      var button = make("button", { type: "button", class: "viewer-play", "aria-pressed": "false" }, controls, "Play");
      controls.insertBefore(button, input.parentNode);
      var stop = function () {
        clearInterval(timer);
        timer = null;
        button.textContent = "Play";
        button.setAttribute("aria-pressed", "false");
      };
      button.addEventListener("click", function () {
        if (timer) {
          stop();
          return;
        }
        if (Number(input.value) >= frames.length - 1) {
          input.value = "0";
        }
        button.textContent = "Pause";
        button.setAttribute("aria-pressed", "true");
        /* Reduced motion: the same steps, slower. */
        timer = setInterval(function () {
          var k = Number(input.value) + 1;
          if (k >= frames.length) {
            stop();
            return;
          }
          input.value = String(k);
          show();
        }, reduced && reduced.matches ? 600 : 120);
      });
      input.addEventListener("input", stop);
    }
    if (spec) {
      place(root, stage);
    }
    show();
    return true;
  }

  var KINDS = { anagram: anagram, zoom: zoom, compare: compare, scrub: scrub };

  function setup(root) {
    if (root.classList.contains("viewer-ready")) {
      return;
    }
    var build = KINDS[root.getAttribute("data-viewer")];
    var spec = null;
    var src = root.getAttribute("data-viewer-src");
    if (src) {
      try {
        spec = JSON.parse(src);
      } catch (e) {
        return; /* the still figure stays */
      }
    }
    if (build && build(root, spec)) {
      root.classList.add("viewer-ready");
    }
  }

  function setupAll() {
    Array.prototype.forEach.call(document.querySelectorAll("[data-viewer]"), setup);
  }

  /* As for the maths: opened from disk Material's document$ may never fire; with instant
     navigation only it does. setup skips a viewer that is ready. */
  if (typeof document$ !== "undefined" && document$ && typeof document$.subscribe === "function") {
    document$.subscribe(setupAll);
  }
  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", setupAll);
  } else {
    setupAll();
  }
})();
