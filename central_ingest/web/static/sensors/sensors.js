// The sensors page (/sensors): pick a station (?station=agent/source preselects it), then one chart per metric
// (water level, fire, air quality...) from the bucketed readings, with the alert levels the rules judge this
// station by drawn as labelled lines and bands, and the latest value with the level it is at; refreshed every
// minute in place. A level's colour follows its severity as on the map (notice amber, warning/critical red).
// Plain JavaScript; every value from the server reaches the page as text, never as HTML.
"use strict";

(() => {
  const { $, el, svg, api, fmtNumber, fmtTime, showError } = window.IOC;
  const TZ = "Asia/Ho_Chi_Minh";
  const KINDS = {
    water_level: ["Mực nước", "Water level"],
    forest_fire: ["Cháy rừng", "Forest fire"],
    environment: ["Chất lượng không khí", "Air quality"],
  };
  const RANGES = { "6h": [6, "5m"], "24h": [24, "15m"], "7d": [168, "1h"], "30d": [720, "6h"] };
  const UNITS = { "1": "", index: "", level: "", degC: "°C", "ug/m3": "µg/m³" };
  const REFRESH_MS = 60000; // the page reloads the shown station this long after its last update
  const TICK_MS = 5000;
  // load: the number of the newest load (an older one's answers are dropped), its AbortController, whether it
  // is still running; shown: the station and period on the page and its sections by metric; updatedAt: when.
  const page = { stations: [], load: 0, controller: null, loading: false, shown: null, sections: new Map(), updatedAt: 0 };

  const unitText = (unit) => (unit in UNITS ? UNITS[unit] : unit);
  // Metres to the centimetre; other units as whole numbers unless the value has a fraction.
  const digitsFor = (value, unit) => (unit === "m" ? 2 : Number.isInteger(Number(value)) ? 0 : 1);
  const withUnit = (value, unit) => `${fmtNumber(value, digitsFor(value, unit))} ${unitText(unit)}`.trim();
  const keyOf = (s) => `${s.agent_id}/${s.source_id}`;

  function query(params) {
    const q = new URLSearchParams();
    for (const [key, value] of Object.entries(params)) if (value !== null && value !== undefined) q.set(key, value);
    return q.toString();
  }

  function fillStations() {
    const select = $("station");
    select.replaceChildren(...page.stations.map((s) => {
      const kind = KINDS[s.sensor_kind] || ["Chưa rõ loại", "Unknown kind"];
      return el("option", { value: keyOf(s) }, `${s.name || s.source_id} (${s.source_id}) · ${kind[0]} / ${kind[1]}`);
    }));
    $("stations-empty").hidden = page.stations.length > 0;
    $("picker").hidden = page.stations.length === 0;
    const wanted = new URLSearchParams(location.search).get("station");
    if (wanted) {
      if (page.stations.some((s) => keyOf(s) === wanted)) select.value = wanted;
      else $("station-missing").hidden = false;
    }
  }

  // ---- one metric ------------------------------------------------------------------------------
  function levelsOf(metric) {
    // The threshold rules' levels (the first rule's, as the alert uses them).
    const rule = metric.thresholds.find((t) => t.kind === "sensor_threshold");
    return rule ? { rule, levels: rule.levels } : { rule: null, levels: [] };
  }

  // A level's colour by its severity, as the map colours a sensor's level (map.js levelChip): notice amber,
  // warning and critical red. The chart's lines and bands use the same two colours (critical lines are thicker).
  const severityChip = (level) => (level.severity === "notice" ? "warn" : "bad");
  const severityClass = (level) => `sev-${severityChip(level)}${level.severity === "critical" ? " sev-critical" : ""}`;

  function drawMetric(container, station, metric, rows, levels, direction) {
    const width = Math.max(640, container.clientWidth - 2 || 900), height = 280;
    const left = 56, right = 200, top = 14, bottom = 30;
    const root = svg("svg", {
      width, height, viewBox: `0 0 ${width} ${height}`, role: "img", class: "metric-svg", id: `svg-${metric.metric}`,
      "aria-label": `${metric.name_vi} tại ${station.name || station.source_id} với các mức cảnh báo / `
        + `${metric.name_en} at ${station.name || station.source_id} with its alert levels`,
    });
    const values = rows.flatMap((r) => [r.min, r.max]).concat(levels.map((l) => l.value));
    if (metric.last_value !== null) values.push(metric.last_value);
    let lo = Math.min(...values), hi = Math.max(...values);
    if (!(hi > lo)) { lo -= 1; hi += 1; }
    const pad = (hi - lo) * 0.1;
    lo -= pad; hi += pad;
    const times = rows.map((r) => new Date(r.bucket).getTime());
    const t0 = Math.min(...times), t1 = Math.max(t0 + 1, ...times);
    const x = (t) => left + ((t - t0) / (t1 - t0)) * (width - left - right);
    const y = (v) => top + (1 - (v - lo) / (hi - lo)) * (height - top - bottom);
    for (let i = 0; i <= 4; i++) {
      const v = lo + ((hi - lo) * i) / 4;
      root.append(svg("line", { x1: left, x2: width - right, y1: y(v), y2: y(v), class: "grid" }));
      root.append(svg("text", { x: left - 6, y: y(v) + 4, "text-anchor": "end" }, fmtNumber(v, 2)));
    }
    // Bands between levels (up to the chart's edge past the last one), then each level's line and label.
    levels.forEach((level, i) => {
      const next = levels[i + 1];
      const edge = direction === "above" ? hi : lo;
      const from = y(level.value), to = y(next ? next.value : edge);
      root.append(svg("rect", {
        x: left, width: width - left - right, y: Math.min(from, to), height: Math.abs(to - from),
        class: `level-band ${severityClass(level)}`,
      }));
    });
    for (const level of levels) {
      const line = svg("line", {
        x1: left, x2: width - right, y1: y(level.value), y2: y(level.value), class: `level-line ${severityClass(level)}`,
        "data-level": level.name, "data-value": level.value, "data-severity": level.severity,
      });
      line.append(svg("title", {}, `${level.label_vi} / ${level.label_en}: ${withUnit(level.value, metric.unit)}`));
      root.append(line);
      root.append(svg("text", { x: width - right + 6, y: y(level.value) + 4, class: `level-label ${severityClass(level)}`,
        "data-level": level.name }, `${level.label_vi} (${withUnit(level.value, metric.unit)})`));
    }
    if (rows.length) {
      const upper = rows.map((r) => `${x(new Date(r.bucket).getTime())},${y(r.max)}`);
      const lower = rows.slice().reverse().map((r) => `${x(new Date(r.bucket).getTime())},${y(r.min)}`);
      root.append(svg("polygon", { points: [...upper, ...lower].join(" "), class: "series-range" }));
      root.append(svg("polyline", { points: rows.map((r) => `${x(new Date(r.bucket).getTime())},${y(r.avg)}`).join(" "), class: "series-line" }));
      for (const r of rows) {
        const dot = svg("circle", { cx: x(new Date(r.bucket).getTime()), cy: y(r.avg), r: 2.5, class: "series-point" });
        dot.append(svg("title", {}, `${fmtTime(r.bucket)}: ${withUnit(r.avg, metric.unit)}`));
        root.append(dot);
      }
      for (let i = 0; i <= 4; i++) {
        const t = t0 + ((t1 - t0) * i) / 4;
        const anchor = i === 0 ? "start" : i === 4 ? "end" : "middle";
        root.append(svg("text", { x: x(t), y: height - bottom + 16, "text-anchor": anchor }, fmtTime(new Date(t)).slice(0, 16)));
      }
    }
    root.append(svg("line", { x1: left, x2: width - right, y1: height - bottom, y2: height - bottom, class: "axis" }));
    container.replaceChildren(root);
  }

  function latestLine(metric, rule) {
    const p = el("p", { class: "latest" });
    p.append("Giá trị mới nhất ", el("span", { class: "en" }, "/ Latest"), ": ",
      el("strong", { class: "last-value" }, withUnit(metric.last_value, metric.unit)),
      ` · ${fmtTime(metric.last_time)} · `);
    if (!rule) {
      p.append(el("span", { class: "chip muted level-chip" }, "Không có ngưỡng cảnh báo / No alert levels"));
    } else if (rule.level) {
      p.append(el("span", { class: `chip ${severityChip(rule.level)} level-chip`, "data-level": rule.level.name,
        "data-severity": rule.level.severity }, `Mức / Level: ${rule.level.label_vi} / ${rule.level.label_en}`));
    } else {
      p.append(el("span", { class: "chip ok level-chip" }, "Dưới các mức cảnh báo / Below the alert levels"));
    }
    return p;
  }

  function readingsTable(metric) {
    // The table's frame; its body is the readings of each load (readingsBody), swapped in place.
    const id = `table-${metric.metric}`;
    const table = el("table", { id, hidden: "" });
    const caption = el("caption", {}, `${metric.name_vi} theo khung thời gian `);
    caption.append(el("span", { class: "en" }, `/ ${metric.name_en} per time bucket`));
    const head = el("tr");
    for (const [vi, en] of [["Thời gian", "Time"], ["Trung bình", "Mean"], ["Thấp nhất", "Min"], ["Cao nhất", "Max"],
      ["Cuối", "Last"], ["Số lần đo", "Readings"]]) {
      const th = el("th", { scope: "col" }, vi);
      th.append(" ", el("span", { class: "en" }, `/ ${en}`));
      head.append(th);
    }
    const thead = el("thead");
    thead.append(head);
    table.append(caption, thead, el("tbody"));
    return table;
  }

  function readingsBody(rows) {
    const tbody = el("tbody");
    for (const r of rows) {
      const tr = el("tr", { "data-bucket": r.bucket });
      tr.append(el("td", {}, fmtTime(r.bucket)), el("td", { class: "num" }, fmtNumber(r.avg, 2)),
        el("td", { class: "num" }, fmtNumber(r.min, 2)), el("td", { class: "num" }, fmtNumber(r.max, 2)),
        el("td", { class: "num last" }, fmtNumber(r.last, 2)), el("td", { class: "num" }, fmtNumber(r.readings)));
      tbody.append(tr);
    }
    return tbody;
  }

  async function loadReadings(station, metric, range, signal) {
    const [hours, bucket] = RANGES[range];
    const end = new Date();
    const start = new Date(end.getTime() - hours * 3600000);
    const body = await api(`/api/v1/sensors/readings?${query({
      agent_id: station.agent_id, source_id: station.source_id, metric: metric.metric, bucket, timezone: TZ,
      start: start.toISOString(), end: new Date(end.getTime() + 60000).toISOString(),
    })}`, { signal });
    return body.items;
  }

  function newSection(metric) {
    // A metric's panel: the title, the table frame and its toggle stay for as long as the station and period are
    // shown (a refresh keeps the table open and the keyboard focus where it was); fillSection swaps the rest.
    const section = el("section", { class: "panel metric", "data-metric": metric.metric, "aria-labelledby": `mt-${metric.metric}` });
    const title = el("h2", { id: `mt-${metric.metric}` }, metric.name_vi);
    title.append(" ", el("span", { class: "en" }, `/ ${metric.name_en}${metric.unit && unitText(metric.unit) ? ` (${unitText(metric.unit)})` : ""}`));
    const latest = el("p", { class: "latest" });
    const notes = el("div", { class: "notes" });
    const chart = el("div", { class: "chart" });
    const toggle = el("button", { type: "button", class: "secondary", "aria-pressed": "false", "aria-controls": `table-${metric.metric}` },
      "Xem dạng bảng ");
    toggle.append(el("span", { class: "en" }, "/ Show as a table"));
    const table = readingsTable(metric);
    toggle.addEventListener("click", () => {
      const show = toggle.getAttribute("aria-pressed") !== "true";
      toggle.setAttribute("aria-pressed", String(show));
      table.hidden = !show;
    });
    section.append(title, latest, notes, chart, toggle, table);
    return { section, latest, notes, chart, table, draw: () => {} };
  }

  function fillSection(entry, station, metric, rows) {
    const { rule, levels } = levelsOf(metric);
    const latest = latestLine(metric, rule);
    entry.latest.replaceWith(latest);
    entry.latest = latest;
    const notes = el("div", { class: "notes" });
    if (rule) {
      notes.append(el("p", { class: "note" },
        `Quy tắc ${rule.rule_id}: cảnh báo khi giá trị ${rule.direction === "above" ? "đạt hoặc vượt" : "bằng hoặc dưới"} mức`
        + `${rule.min_duration_s ? ` trong ${fmtNumber(rule.min_duration_s)} giây` : ""}. / Rule ${rule.rule_id}: alerts when the value is `
        + `${rule.direction === "above" ? "at or above" : "at or below"} a level${rule.min_duration_s ? ` for ${rule.min_duration_s} s` : ""}.`));
    }
    if (!rows.length) notes.append(el("p", { class: "note" }, "Không có số đo trong khoảng này. / No readings in this period."));
    entry.notes.replaceWith(notes);
    entry.notes = notes;
    entry.table.tBodies[0].replaceWith(readingsBody(rows));
    entry.draw = () => drawMetric(entry.chart, station, metric, rows, levels, rule ? rule.direction : "above");
  }

  function render(station, results, keep) {
    // keep: the same station and period as on the page (a refresh): update its panels in place.
    const before = keep ? page.sections : new Map();
    const sections = new Map();
    for (const { metric, rows } of results) {
      const entry = before.get(metric.metric) || newSection(metric);
      fillSection(entry, station, metric, rows);
      sections.set(metric.metric, entry);
    }
    page.sections = sections;
    const wanted = [...sections.values()].map((entry) => entry.section);
    if (!wanted.length) {
      wanted.push(el("p", { class: "panel note" }, "Trạm chưa gửi số đo nào. / The station has sent no readings yet."));
    }
    const container = $("metrics");
    const current = [...container.children];
    // Moving a panel would take the keyboard focus out of it: only when the set of metrics changed.
    if (wanted.length !== current.length || wanted.some((node, i) => node !== current[i])) container.replaceChildren(...wanted);
    sections.forEach((entry) => entry.draw()); // after they are in the page, so each chart takes the panel's width
  }

  function showStation(station) {
    const kind = KINDS[station.sensor_kind] || ["Chưa rõ loại", "Unknown kind"];
    const place = [station.commune, station.district, station.province].filter(Boolean).join(", ");
    $("station-info").textContent = `${station.name || station.source_id} · ${kind[0]} / ${kind[1]}`
      + `${place ? ` · ${place}` : ""} · ${station.agent_id}/${station.source_id}`;
    const url = new URL(location.href);
    url.searchParams.set("station", keyOf(station));
    history.replaceState(null, "", url);
  }

  async function load() {
    // Show the chosen station over the chosen period. Each load has a number and aborts the one before, so
    // only the newest one's answers reach the page (arrowing through the station list starts one per step).
    const chosen = page.stations.find((s) => keyOf(s) === $("station").value);
    if (!chosen) {
      document.body.dataset.loaded = "true";
      return;
    }
    const key = keyOf(chosen), range = $("range").value;
    const same = page.shown !== null && page.shown.key === key && page.shown.range === range;
    const number = ++page.load;
    if (page.controller) page.controller.abort();
    const controller = new AbortController();
    page.controller = controller;
    page.loading = true;
    document.body.dataset.loaded = "false";
    showStation(chosen);
    if (!same) {
      // Nothing of the station or period shown before stays under the new heading, even if this load fails.
      showError($("page-error"), "");
      page.shown = null;
      page.sections = new Map();
      $("metrics").replaceChildren(el("p", { class: "panel note" }, "Đang tải số đo… / Loading the readings…"));
      $("updated-at").textContent = "";
    }
    try {
      // The station's own record again: its latest values and the level they are at move with each reading.
      const answer = await api(`/api/v1/dashboards/sensors/stations?${query({ agent_id: chosen.agent_id, source_id: chosen.source_id })}`,
        { signal: controller.signal });
      const station = answer.items.find((s) => keyOf(s) === key) || chosen;
      const results = await Promise.all(station.metrics.map(async (metric) => (
        { metric, rows: await loadReadings(station, metric, range, controller.signal) })));
      if (number !== page.load) return;
      page.stations = page.stations.map((s) => (keyOf(s) === key ? station : s));
      showStation(station);
      render(station, results, same);
      page.shown = { key, range };
      page.updatedAt = Date.now();
      showError($("page-error"), "");
      const at = fmtTime(new Date());
      $("updated-at").textContent = `Cập nhật lúc ${at}, tự làm mới mỗi phút / Updated at ${at}, refreshed every minute`;
    } catch (error) {
      if (number !== page.load) return; // a newer load took over (this one was aborted or answered late)
      if (same) {
        showError($("page-error"), "Không làm mới được; số liệu bên dưới là của lần cập nhật trước. / Could not "
          + `refresh; the figures below are from the last update. ${error.message}`);
      } else {
        showError($("page-error"), error.message);
        $("metrics").replaceChildren();
      }
    } finally {
      if (number === page.load) {
        page.loading = false;
        page.controller = null;
        document.body.dataset.loaded = "true";
      }
    }
  }

  function show(event) {
    // The user chose a station or period: the note about a station not in the area no longer applies.
    if (event) {
      event.preventDefault();
      $("station-missing").hidden = true;
    }
    return load();
  }

  function refreshIfDue() {
    // A minute after the last update while the page is visible and no load is running (a failed load is
    // retried), and at once on coming back to the page after a minute away.
    if (document.hidden || page.loading) return;
    if (Date.now() - page.updatedAt >= REFRESH_MS) load();
  }

  window.IOC.shell({
    page: "sensors",
    onReady: async () => {
      try {
        page.stations = (await api("/api/v1/dashboards/sensors/stations")).items;
      } catch (error) {
        showError($("page-error"), error.message);
      }
      fillStations();
      $("picker").addEventListener("submit", show);
      $("station").addEventListener("change", show);
      $("range").addEventListener("change", show);
      setInterval(refreshIfDue, TICK_MS);
      document.addEventListener("visibilitychange", refreshIfDue);
      await load();
    },
  });
})();
