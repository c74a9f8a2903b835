// Loaded only by `python docs/check.py` builds (SKAM_DOCS_CHECK=1, see conf.py):
// after the page and MathJax are done, record broken images and untypeset math
// as <body data-skam-*> attributes that the check reads from the dumped DOM.
(function () {
  function record() {
    var broken = 0;
    document.querySelectorAll("img").forEach(function (img) {
      if (!img.complete || img.naturalWidth === 0) { broken += 1; }
    });
    var raw = 0;
    document.querySelectorAll("span.math, div.math").forEach(function (el) {
      if (!el.querySelector("mjx-container") && /\\\(|\\\[|\$\$/.test(el.textContent)) {
        raw += 1;
      }
    });
    document.body.setAttribute("data-skam-broken-images", String(broken));
    document.body.setAttribute("data-skam-raw-tex", String(raw));
  }
  window.addEventListener("load", function () {
    var mj = window.MathJax;
    if (mj && mj.startup && mj.startup.promise) {
      mj.startup.promise.then(record, record);
    } else {
      record();
    }
  });
})();
