/*
 * KaTeX hookup for pymdownx.arithmatex (generic: true) on MkDocs-Material.
 *
 * Arithmatex wraps inline math as <span class="arithmatex">\(...\)</span> and
 * display math as <div class="arithmatex">\[...\]</div>. We render each of
 * those elements with KaTeX's auto-render extension. Material's instant
 * navigation swaps page content without a full reload and re-emits the
 * `document$` observable, so rendering is hooked onto it when available.
 */
(function () {
  "use strict";

  var options = {
    delimiters: [
      { left: "\\(", right: "\\)", display: false },
      { left: "\\[", right: "\\]", display: true }
    ],
    throwOnError: false
  };

  function renderMath(root) {
    if (typeof renderMathInElement !== "function") {
      return;
    }
    var scope = root && root.querySelectorAll ? root : document;
    var elements = scope.querySelectorAll(".arithmatex");
    for (var i = 0; i < elements.length; i++) {
      var el = elements[i];
      if (el.querySelector(".katex")) {
        continue; /* already rendered */
      }
      renderMathInElement(el, options);
    }
  }

  /* Both hooks, because either may be missing: opened from disk (file://) Material's
     `document$` may never fire, and with instant navigation a page swap fires only it.
     renderMath skips what is already typeset, so running twice costs nothing. */
  if (typeof document$ !== "undefined" && document$ && typeof document$.subscribe === "function") {
    document$.subscribe(function () {
      renderMath(document);
    });
  }
  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", function () {
      renderMath(document);
    });
  } else {
    renderMath(document);
  }
})();
