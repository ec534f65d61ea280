/* cclens dashboard: draws every .chart from its JSON spec with ECharts (SVG), sorts tables, keeps filters in the URL. */
(function () {
  "use strict";
  var fmt = {
    usd: function (v) { return v == null ? "—" : "$" + Number(v).toLocaleString("en-US", {minimumFractionDigits: 2, maximumFractionDigits: 2}); },
    int: function (v) { return v == null ? "—" : Number(v).toLocaleString("en-US", {maximumFractionDigits: 0}); },
    tokens: function (v) {
      if (v == null) return "—";
      var a = Math.abs(v);
      if (a >= 1e9) return (v / 1e9).toFixed(2) + "B";
      if (a >= 1e6) return (v / 1e6).toFixed(1) + "M";
      if (a >= 1e3) return (v / 1e3).toFixed(1) + "k";
      return String(v);
    },
    pct: function (v) { return v == null ? "—" : (100 * v).toFixed(1) + "%"; },
    num: function (v) { return v == null ? "—" : Number(v).toLocaleString("en-US", {maximumFractionDigits: 2}); }
  };
  var palette = ["#c2571a", "#1f5fbf", "#1b7f4b", "#8e5bb5", "#d19a00", "#0f8a8a", "#b3261e", "#5d6776", "#e07b9a", "#6b9e5a"];

  function option(spec) {
    var f = fmt[spec.unit] || fmt.num;
    var base = {
      color: palette, animation: false,
      grid: {left: 8, right: 12, top: 34, bottom: 8, containLabel: true},
      tooltip: {trigger: spec.kind === "pie" || spec.kind === "heatmap" ? "item" : "axis", confine: true,
                valueFormatter: function (v) { return f(v); }},
      legend: {type: "scroll", top: 0, textStyle: {fontSize: 11}}
    };
    if (spec.kind === "pie") {
      base.series = [{type: "pie", radius: ["38%", "68%"], top: 24, avoidLabelOverlap: true,
        label: {formatter: "{b}: {d}%", fontSize: 11},
        data: spec.series[0].data.map(function (d) { return {name: d[0], value: d[1]}; })}];
      base.legend.show = false;
      return base;
    }
    if (spec.kind === "heatmap") {
      var max = 0;
      spec.data.forEach(function (d) { if (d[2] > max) max = d[2]; });
      base.grid.bottom = 48;
      base.tooltip.formatter = function (p) { return spec.y[p.value[1]] + " " + spec.x[p.value[0]] + ":00 — " + f(p.value[2]); };
      base.xAxis = {type: "category", data: spec.x, splitArea: {show: true}, name: spec.xname || ""};
      base.yAxis = {type: "category", data: spec.y, splitArea: {show: true}};
      base.visualMap = {min: 0, max: max || 1, calculable: false, orient: "horizontal", left: "center", bottom: 0,
        itemHeight: 120, inRange: {color: ["#f4f6f9", "#f0a36f", "#c2571a", "#6d2c08"]}};
      base.series = [{type: "heatmap", data: spec.data, emphasis: {itemStyle: {borderColor: "#333", borderWidth: 1}}}];
      base.legend.show = false;
      return base;
    }
    base.xAxis = {type: "category", data: spec.x, axisLabel: {fontSize: 11, hideOverlap: true}};
    base.yAxis = {type: "value", axisLabel: {fontSize: 11, formatter: function (v) { return f(v); }},
                  name: spec.yname || "", nameTextStyle: {fontSize: 11, align: "left"}};
    base.series = spec.series.map(function (s) {
      var type = s.type || (spec.kind === "line" ? "line" : "bar");
      var out = {name: s.name, type: type, data: s.data, showSymbol: false, connectNulls: false};
      if (spec.stack && type === "bar") out.stack = "total";
      if (type === "line" && spec.area) out.areaStyle = {opacity: 0.12};
      if (s.dashed) out.lineStyle = {type: "dashed"};
      return out;
    });
    return base;
  }

  function drawCharts() {
    if (!window.echarts) return;
    document.querySelectorAll(".chart[data-spec]").forEach(function (el) {
      var spec = JSON.parse(document.getElementById(el.getAttribute("data-spec")).textContent);
      var chart = echarts.init(el, null, {renderer: "svg"});
      chart.on("finished", function () { el.setAttribute("data-rendered", "1"); });
      chart.setOption(option(spec));
      el.setAttribute("data-rendered", "1");
      window.addEventListener("resize", function () { chart.resize(); });
    });
  }

  function sortable() {
    document.querySelectorAll("table.data").forEach(function (table) {
      table.querySelectorAll("th").forEach(function (th, idx) {
        th.addEventListener("click", function () {
          var asc = th.getAttribute("aria-sort") !== "ascending";
          table.querySelectorAll("th").forEach(function (o) { o.removeAttribute("aria-sort"); });
          th.setAttribute("aria-sort", asc ? "ascending" : "descending");
          var body = table.tBodies[0];
          var rows = Array.prototype.slice.call(body.rows);
          rows.sort(function (a, b) {
            var x = a.cells[idx].getAttribute("data-v"), y = b.cells[idx].getAttribute("data-v");
            var nx = parseFloat(x), ny = parseFloat(y);
            var c = (!isNaN(nx) && !isNaN(ny)) ? nx - ny : String(x).localeCompare(String(y));
            return asc ? c : -c;
          });
          rows.forEach(function (r) { body.appendChild(r); });
        });
      });
    });
  }

  function filters() {
    var form = document.querySelector("form.filters");
    if (!form) return;
    form.querySelectorAll("select").forEach(function (s) {
      s.addEventListener("change", function () { form.requestSubmit ? form.requestSubmit() : form.submit(); });
    });
    form.addEventListener("submit", function () {  // keep the URL short: drop empty fields
      form.querySelectorAll("input, select").forEach(function (i) { if (!i.value) i.disabled = true; });
    });
  }

  document.addEventListener("DOMContentLoaded", function () { filters(); sortable(); drawCharts(); });
})();
