// runsize "try a shopper": sends the form as a POST /v1/recommend request and shows the
// answer. No dependencies; the page works without it except for this form.
(function () {
  "use strict";
  var form = document.getElementById("try-form");
  var out = document.getElementById("result");
  if (!form || !out) { return; }

  function val(name) {
    var el = form.elements[name];
    return el && el.value ? String(el.value).trim() : "";
  }

  function requestBody() {
    var product = {};
    if (val("product_id")) { product.product_id = val("product_id"); }
    if (val("brand")) { product.brand = val("brand"); }
    if (val("category")) { product.category = val("category"); }
    var sizes = val("sizes");
    if (sizes) {
      product.sizes = sizes.split(",").map(function (s) { return s.trim(); })
        .filter(function (s) { return s.length > 0; });
    }
    var shopper = { history: [], reference: [], features: {} };
    if (val("h_size")) {
      var h = { size: val("h_size"), outcome: val("h_outcome") || "kept" };
      if (val("h_brand")) { h.brand = val("h_brand"); }
      shopper.history.push(h);
    }
    if (val("r_size")) {
      var r = { size: val("r_size") };
      if (val("r_brand")) { r.brand = val("r_brand"); }
      shopper.reference.push(r);
    }
    var fields = form.querySelectorAll("[data-feature]");
    for (var i = 0; i < fields.length; i++) {
      var el = fields[i];
      var v = String(el.value || "").trim();
      if (!v) { continue; }
      shopper.features[el.getAttribute("data-feature")] =
        el.getAttribute("data-kind") === "number" ? Number(v) : v;
    }
    return { product: product, shopper: shopper };
  }

  function el(tag, text, cls) {
    var e = document.createElement(tag);
    if (text !== undefined && text !== null) { e.textContent = text; }
    if (cls) { e.className = cls; }
    return e;
  }

  function pct(x) { return Math.round(100 * x) + "%"; }

  function render(j) {
    out.textContent = "";
    var h = el("h2", "Recommended size: " + j.recommended_size);
    h.id = "recommended";
    h.setAttribute("data-size", j.recommended_size);
    out.appendChild(h);
    out.appendChild(el("p", "Fits with probability " + pct(j.fit_probability) +
      "; confidence " + j.confidence.level + " (shopper size known to ±" +
      j.confidence.shopper_size_sd.toFixed(2) + " sizes, from " +
      j.confidence.basis.join(", ") + ")."));
    out.appendChild(el("p", j.explanation, "explanation"));
    var t = el("table", null, "data sizes");
    t.appendChild(el("caption", "Probabilities per size on offer"));
    var head = el("tr");
    ["Size", "Too small", "Fits", "Too large", ""].forEach(function (c) {
      var th = el("th", c); th.setAttribute("scope", "col"); head.appendChild(th);
    });
    var thead = el("thead"); thead.appendChild(head); t.appendChild(thead);
    var body = el("tbody");
    j.sizes.forEach(function (s) {
      var tr = el("tr");
      var th = el("th", s.size); th.setAttribute("scope", "row"); tr.appendChild(th);
      tr.appendChild(el("td", pct(s.p_small), "num"));
      var fit = el("td", pct(s.p_fit), s.size === j.recommended_size ? "num best" : "num");
      tr.appendChild(fit);
      tr.appendChild(el("td", pct(s.p_large), "num"));
      var barCell = el("td");
      var bar = el("span", null, "bar");
      bar.style.width = Math.round(120 * s.p_fit) + "px";
      bar.setAttribute("aria-hidden", "true");
      barCell.appendChild(bar);
      tr.appendChild(barCell);
      body.appendChild(tr);
    });
    t.appendChild(body);
    out.appendChild(t);
  }

  function run(ev) {
    if (ev) { ev.preventDefault(); }
    out.textContent = "Asking /v1/recommend ...";
    fetch("/v1/recommend", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify(requestBody())
    }).then(function (r) {
      return r.json().then(function (j) { return { ok: r.ok, status: r.status, j: j }; });
    }).then(function (res) {
      if (!res.ok) {
        out.textContent = "";
        out.appendChild(el("p", "Error " + res.status + ": " + res.j.error +
          (res.j.field ? " (field " + res.j.field + ")" : ""), "error"));
        return;
      }
      render(res.j);
    }).catch(function (e) {
      out.textContent = "";
      out.appendChild(el("p", "The request failed: " + e, "error"));
    });
  }

  form.addEventListener("submit", run);
  if (new URLSearchParams(window.location.search).get("run") === "1") { run(); }
})();
