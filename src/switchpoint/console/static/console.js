// switchpoint console: the little the pages need from a script (they all work without it).
"use strict";
(function () {
  // Forms that ask before they change something (revoking a key).
  document.addEventListener("submit", function (ev) {
    var msg = ev.target.getAttribute("data-confirm");
    if (msg && !window.confirm(msg)) ev.preventDefault();
  });
  drawCharts();
  // The models page: breaker state, live, every 5 seconds.
  var cells = document.querySelectorAll("[data-breaker]");
  if (!cells.length) return;
  function refresh() {
    fetch("/ui/models/breakers.json", { credentials: "same-origin", cache: "no-store" })
      .then(function (r) { return r.ok ? r.json() : null; })
      .then(function (doc) {
        if (!doc) return;
        cells.forEach(function (cell) {
          var b = doc.deployments[cell.getAttribute("data-breaker")];
          var badge = cell.querySelector(".badge");
          if (!badge) return;
          var state = b ? b.state : "closed";
          badge.textContent = state;
          badge.className = "badge " + state;
          badge.setAttribute("data-breaker-state", state);
        });
      })
      .catch(function () {});
  }
  setInterval(refresh, 5000);

  // The overview's time-series charts, drawn with the vendored uPlot (vendor/uplot/) from the
  // JSON the server put beside each one. The server's SVG stays in the figure (without this
  // script, or without uPlot, it is the chart) and is hidden once uPlot has drawn.
  function drawCharts() {
    if (typeof window.uPlot !== "function") return;
    var css = getComputedStyle(document.documentElement);
    document.querySelectorAll("figure.chart").forEach(function (fig) {
      var node = fig.querySelector("script.chart-data");
      var box = fig.querySelector(".plot");
      if (!node || !box) return;
      try {
        draw(fig, box, JSON.parse(node.textContent), css);
      } catch (err) {
        // Keep the SVG: a chart that could not be drawn is still there.
        fig.classList.remove("drawn");
        box.hidden = true;
        box.textContent = "";
        console.error("chart not drawn:", err);
      }
    });
  }

  function color(css, cls) {
    return css.getPropertyValue("--" + cls.replace(/^s-/, "")).trim() || "#2457a6";
  }

  // A number as the console writes it: US dollars (cents over $1, more digits below) or a count.
  function show(doc, v) {
    if (v === null || v === undefined) return "\u2014";
    if (doc.format === "usd") {
      var a = Math.abs(v);
      var d = a >= 1 || a === 0 ? 2 : a >= 0.01 ? 4 : 6;
      return "$" + v.toLocaleString("en-US", { minimumFractionDigits: d, maximumFractionDigits: d });
    }
    return v.toLocaleString("en-US", { maximumFractionDigits: Math.abs(v) < 10 ? 1 : 0 });
  }

  function ticks(doc) {
    return function (u, splits) {
      var inc = splits.length > 1 ? Math.abs(splits[1] - splits[0]) : 1;
      var d = 0; // as many decimals as the step needs (2.5 has one)
      while (d < 8 && inc > 0 && Math.abs(inc * Math.pow(10, d) - Math.round(inc * Math.pow(10, d))) > 1e-6) d++;
      if (doc.format === "usd") d = Math.max(d, 2);
      return splits.map(function (v) {
        var t = v.toLocaleString("en-US", { minimumFractionDigits: d, maximumFractionDigits: d });
        return doc.format === "usd" ? "$" + t : t;
      });
    };
  }

  function draw(fig, box, doc, css) {
    var HEIGHT = 220;
    var WHOLE = [1, 2, 5, 10, 20, 50, 100, 200, 500, 1e3, 2e3, 5e3, 1e4, 2e4, 5e4, 1e5, 2e5, 5e5, 1e6, 1e7];
    var muted = css.getPropertyValue("--muted").trim();
    var grid = css.getPropertyValue("--line").trim();
    var xs = doc.x;
    var step = xs.length > 1 ? xs[1] - xs[0] : doc.time ? 3600 : 1;
    var withUnit = function (v) {
      if (v === null || v === undefined) return "\u2014";
      return doc.format === "usd" ? show(doc, v) : show(doc, v) + " " + doc.unit;
    };
    var data = [xs];
    var series = [
      {
        label: doc.time ? "UTC" : "",
        value: function (u, v, si, i) { return i === null || i === undefined ? "\u2014" : doc.labels[i]; },
      },
    ];
    if (doc.kind === "bars") {
      // Stacked: each series drawn as the sum of itself and those below it, the tallest first
      // so the ones below stay visible; the legend says each one's own value.
      var bars = uPlot.paths.bars({ size: [0.8, Infinity] });
      for (var k = doc.series.length - 1; k >= 0; k--) {
        var sums = xs.map(function (_, i) {
          var t = 0;
          for (var j = 0; j <= k; j++) t += doc.series[j].values[i] || 0;
          return t;
        });
        data.push(sums);
        var c = color(css, doc.series[k].css);
        series.push({
          label: doc.series[k].name,
          stroke: c,
          fill: c,
          width: 0,
          paths: bars,
          points: { show: false },
          value: (function (own) {
            return function (u, v, si, i) {
              return i === null || i === undefined ? "\u2014" : withUnit(own[i] || 0);
            };
          })(doc.series[k].values),
        });
      }
    } else {
      doc.series.forEach(function (s) {
        var c = color(css, s.css);
        data.push(s.values);
        series.push({
          label: s.name,
          stroke: c,
          width: 2,
          spanGaps: false,
          points: { show: true, size: 6, fill: c, stroke: c },
          value: function (u, v) { return withUnit(v); },
        });
      });
    }
    fig.classList.add("drawn");
    box.hidden = false;
    var opts = {
      width: Math.max(200, box.clientWidth),
      height: HEIGHT,
      series: series,
      scales: {
        x: {
          time: doc.time,
          range: function (u, min, max) { return [min - step / 2, max + step / 2]; },
        },
        y: {
          range: function (u, min, max) { return [0, max > 0 ? max * 1.1 : 1]; },
        },
      },
      axes: [
        { stroke: muted, grid: { stroke: grid, width: 1 }, ticks: { stroke: grid, width: 1 } },
        {
          label: doc.unit,
          stroke: muted,
          size: 64,
          values: ticks(doc),
          // Requests are whole: steps of 1, 2 or 5 times a power of ten.
          incrs: doc.kind === "bars" && doc.format === "count" ? WHOLE : undefined,
          grid: { stroke: grid, width: 1 },
          ticks: { stroke: grid, width: 1 },
        },
      ],
      legend: { live: true },
      tzDate: function (ts) { return uPlot.tzDate(new Date(ts * 1e3), "Etc/UTC"); },
    };
    var u = new uPlot(opts, data, box);
    fig.uplot = u;
    fig.setAttribute("data-drawn", "uplot");
    var last = box.clientWidth;
    window.addEventListener("resize", function () {
      var w = box.clientWidth;
      if (w && w !== last) {
        last = w;
        u.setSize({ width: Math.max(200, w), height: HEIGHT });
      }
    });
  }
})();
