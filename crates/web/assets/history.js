// pwsync panel, History: one statistic's energy, HA against InfluxDB, drawn by uPlot from
// history/series.json. Over more than 60 days it shows daily sums (26,000 hours in 1,000 pixels
// are a smear), zoomed in further each hour. The problems listed below the chart are red bands
// on it; a click on one zooms to its hours, a day around them. `window.pwsyncChart` is the
// uPlot instance (its `scales.x` is the range shown), for the browser tests.
"use strict";

(() => {
  const box = document.getElementById("chart");
  if (!box || typeof uPlot === "undefined") return;
  const HOUR = 3600;
  const DAY = 86400;
  const DAILY_ABOVE = 60 * DAY;
  const plot = document.getElementById("chart-plot");
  const pick = document.getElementById("chart-statistic");
  const unit = document.getElementById("chart-unit");
  const rows = Array.from(document.querySelectorAll("#problems tr[data-statistic]"));
  const loaded = new Map();
  let chart = null;
  let shown = null; // { statistic, series, mode, problems }
  let picked = null;

  const kwh = (u, v) => (v == null ? "—" : v.toFixed(3) + " kWh");

  function problemsOf(statistic) {
    return rows
      .filter((r) => r.dataset.statistic === statistic)
      .map((r) => ({ start: Number(r.dataset.start), end: Number(r.dataset.end), row: r }));
  }

  // The JSON's columns as uPlot's data: x values, HA, InfluxDB. Each value is drawn as a step
  // over its hour (or day), so the columns get one more x, the end, repeating the last values.
  function shape(json) {
    const h = json.hours;
    const n = h.ha.length;
    const last = h.start + n * h.step;
    const x = new Array(n + 1);
    for (let i = 0; i <= n; i++) x[i] = h.start + i * h.step;
    const closed = (xs, ...columns) => [xs, ...columns.map((c) => c.concat(c.slice(-1)))];
    return {
      timeZone: json.time_zone,
      first: h.start,
      last,
      hours: closed(x, h.ha, h.influx),
      days: closed(json.days.start.concat([last]), json.days.ha, json.days.influx),
    };
  }

  async function load(statistic) {
    if (!loaded.has(statistic)) {
      const r = await fetch(box.dataset.series + "?statistic=" + encodeURIComponent(statistic));
      if (!r.ok) throw new Error(await r.text());
      loaded.set(statistic, shape(await r.json()));
    }
    return loaded.get(statistic);
  }

  const modeFor = (min, max) => (max - min > DAILY_ABOVE ? "days" : "hours");

  function say(mode) {
    unit.textContent =
      mode === "days" ? "Energy per day (sums of the hours)." : "Energy per hour.";
    box.dataset.mode = mode;
  }

  // Above 60 days the daily sums, else the hours; switched after uPlot has set the scale.
  function follow(u) {
    const { min, max } = u.scales.x;
    const mode = modeFor(min, max);
    if (!shown || mode === shown.mode) return;
    shown.mode = mode;
    say(mode);
    queueMicrotask(() => {
      u.setData(shown.series[mode], false);
      u.setScale("x", { min, max });
    });
  }

  // The problems as bands over the plot, the picked one darker; at least 2 px wide.
  function bands(u) {
    if (!shown) return;
    const { left, top, width, height } = u.bbox;
    const ctx = u.ctx;
    ctx.save();
    for (const p of shown.problems) {
      const x0 = Math.max(u.valToPos(p.start, "x", true), left);
      const x1 = Math.min(u.valToPos(p.end, "x", true), left + width);
      if (x1 < left || x0 > left + width) continue;
      const w = Math.max(x1 - x0, 2 * devicePixelRatio);
      ctx.fillStyle = p === picked ? "rgba(201, 42, 42, 0.45)" : "rgba(201, 42, 42, 0.2)";
      ctx.fillRect(x0, top, w, height);
    }
    ctx.restore();
  }

  const step = uPlot.paths.stepped({ align: 1 });
  const points = { show: false };

  function options(series) {
    const text = getComputedStyle(document.body).color;
    const grid = { stroke: "rgba(128, 128, 128, 0.2)", width: 1 };
    return {
      width: Math.max(plot.clientWidth, 280),
      height: 320,
      tzDate: (ts) => uPlot.tzDate(new Date(ts * 1e3), series.timeZone),
      cursor: { drag: { x: true, y: false } },
      scales: { x: { time: true } },
      axes: [
        { stroke: text, grid, ticks: grid },
        { stroke: text, grid, ticks: grid, label: "kWh", size: 60 },
      ],
      series: [
        {},
        { label: "HA", stroke: "#1c7ed6", width: 1.5, paths: step, points, value: kwh },
        { label: "InfluxDB", stroke: "#e8590c", width: 1.5, dash: [5, 4], paths: step, points, value: kwh },
      ],
      hooks: {
        setScale: [(u, key) => key === "x" && follow(u)],
        draw: [bands],
      },
    };
  }

  async function show(statistic) {
    const series = await load(statistic);
    const mode = modeFor(series.first, series.last);
    shown = { statistic, series, mode, problems: problemsOf(statistic) };
    picked = null;
    for (const r of rows) r.classList.remove("picked");
    if (chart) chart.destroy();
    say(mode);
    chart = new uPlot(options(series), series[mode], plot);
    window.pwsyncChart = chart;
    if (pick.value !== statistic) pick.value = statistic;
  }

  function zoom(min, max) {
    if (chart) chart.setScale("x", { min, max });
  }

  // "1 week": from the whole range, the last week; from a zoomed view, a week around its middle.
  function range(days) {
    const { first, last } = shown.series;
    const span = days * DAY;
    if (days === 0 || span >= last - first) return zoom(first, last);
    const { min, max } = chart.scales.x;
    const whole = min <= first && max >= last - DAY;
    let from = whole ? last - span : (min + max) / 2 - span / 2;
    from = Math.max(first, Math.min(from, last - span));
    zoom(from, from + span);
  }

  async function showProblem(row) {
    const statistic = row.dataset.statistic;
    if (!shown || shown.statistic !== statistic) await show(statistic);
    picked = shown.problems.find((p) => p.row === row) || null;
    for (const r of rows) r.classList.toggle("picked", r === row);
    const start = Number(row.dataset.start);
    const end = Number(row.dataset.end);
    zoom(start - 12 * HOUR, end + 12 * HOUR);
    box.scrollIntoView({ behavior: "smooth", block: "nearest" });
  }

  pick.addEventListener("change", () => show(pick.value).catch(failed));
  for (const b of box.querySelectorAll(".chart-ranges button")) {
    b.addEventListener("click", () => shown && range(Number(b.dataset.days)));
  }
  for (const r of rows) {
    r.querySelector("button.show-problem").addEventListener("click", () =>
      showProblem(r).catch(failed),
    );
  }
  window.addEventListener("resize", () => {
    if (chart) chart.setSize({ width: Math.max(plot.clientWidth, 280), height: 320 });
  });

  function failed(e) {
    plot.textContent = "The chart could not load: " + e.message;
  }

  if (pick.value) show(pick.value).catch(failed);
})();
