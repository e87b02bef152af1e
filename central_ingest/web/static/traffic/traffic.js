// The traffic dashboard (/traffic): counts over time by class and direction, peak hours, violations per
// junction against the rule's trailing average and +X% line (the texts built from the rule itself), and the
// counts CSV export. Each refresh has a number: only the newest one's answers are drawn. Plain JavaScript, no
// build step; every value from the server reaches the page as text (textContent / SVG text), never as HTML.
"use strict";

(() => {
  const { $, el, svg, api, fmtNumber, fmtTime, showError } = window.IOC;
  const VN_OFFSET = "+07:00"; // Vietnam keeps UTC+7 all year (no daylight saving)
  const TZ = "Asia/Ho_Chi_Minh";
  const CLASS_NAMES = window.IOC.VEHICLE_CLASSES;
  const CLASS_ORDER = Object.keys(CLASS_NAMES);
  const STATE_CHIPS = {
    breach: ["bad", "Vượt ngưỡng, có cảnh báo", "Above the threshold, alert"],
    clear: ["ok", "Bình thường", "Normal"],
    unknown: ["muted", "Chưa đủ dữ liệu", "Not enough data"],
  };
  const SHOWN_PERIODS = 30; // periods of each junction in the violations section, whatever the chosen range
  // The words of a violation_increase rule's period ("1d" or "1h").
  const PERIOD_WORDS = {
    "1d": { one: ["một ngày", "one day"], unit: ["ngày", "days"], latest: ["Ngày gần nhất", "Latest day"], column: ["Ngày", "Day"] },
    "1h": { one: ["một giờ", "one hour"], unit: ["giờ", "hours"], latest: ["Giờ gần nhất", "Latest hour"], column: ["Giờ", "Hour"] },
  };
  const wordsOf = (rule) => PERIOD_WORDS[rule.period] || PERIOD_WORDS["1d"];
  function statusText(status, rule) {
    const w = wordsOf(rule);
    if (status === "insufficient_baseline") return [`chưa đủ ${w.unit[0]} có dữ liệu để tính trung bình`, `too few ${w.unit[1]} with data for an average`];
    if (status === "undetermined_low_coverage") return [`camera chưa phân tích đủ thời gian của ${w.one[0]}`, "cameras analysed too little of the period"];
    return null;
  }
  // load: the number of the newest refresh (older answers are dropped) and its AbortController.
  const page = { sites: [], junctions: [], load: 0, controller: null, exporting: false };

  // ---- time ------------------------------------------------------------------------------------
  const dayFormat = new Intl.DateTimeFormat("en-CA", { timeZone: TZ, year: "numeric", month: "2-digit", day: "2-digit" });
  const todayVn = () => dayFormat.format(new Date());
  function addDays(iso, days) {
    const d = new Date(`${iso}T00:00:00Z`);
    d.setUTCDate(d.getUTCDate() + days);
    return d.toISOString().slice(0, 10);
  }
  const dayStart = (iso) => `${iso}T00:00:00${VN_OFFSET}`;
  const spanDays = (a, b) => Math.round((new Date(`${b}T00:00:00Z`) - new Date(`${a}T00:00:00Z`)) / 86400000) + 1;

  function chosenRange() {
    // { start, end, bucket, label } in ISO with Vietnam's offset; throws a bilingual Error for a bad custom range.
    const kind = $("range").value;
    const today = todayVn();
    const now = new Date().toISOString();
    if (kind === "today") return { start: dayStart(today), end: now, bucket: "1h", days: 1 };
    if (kind === "7d") return { start: dayStart(addDays(today, -6)), end: now, bucket: "3h", days: 7 };
    if (kind === "30d") return { start: dayStart(addDays(today, -29)), end: now, bucket: "1d", days: 30 };
    const from = $("start-date").value, to = $("end-date").value;
    if (!from || !to) throw new Error("Chọn ngày bắt đầu và ngày kết thúc. / Choose a start and an end date.");
    if (from > to) throw new Error("Ngày bắt đầu phải trước ngày kết thúc. / The start date must come first.");
    const days = spanDays(from, to);
    if (days > 400) throw new Error("Tối đa 400 ngày. / At most 400 days.");
    const bucket = days <= 2 ? "1h" : days <= 14 ? "6h" : "1d";
    const end = dayStart(addDays(to, 1));
    // last: the range's last second, for what is judged "as of" its last day (the end itself is the day after).
    return { start: dayStart(from), end, bucket, days, custom: true, last: new Date(new Date(end).getTime() - 1000).toISOString() };
  }

  function bucketLabel(iso, bucket) {
    const text = fmtTime(iso); // dd/mm/yyyy HH:MM:SS
    return bucket === "1d" ? text.slice(0, 10) : `${text.slice(0, 5)} ${text.slice(11, 16)}`;
  }

  // ---- selection -------------------------------------------------------------------------------
  const siteName = (agent, source) => {
    const site = page.sites.find((s) => s.agent_id === agent && s.id === source);
    return site ? `${site.name} (${source})` : `${agent}/${source}`;
  };

  function fillCameraChoices() {
    const select = $("camera");
    select.replaceChildren(el("option", { value: "all" }, "Tất cả camera trong khu vực / All cameras in your area"));
    const inJunction = new Set();
    for (const j of page.junctions) {
      const group = el("optgroup", { label: `${j.name_vi} / ${j.name_en}` });
      group.append(el("option", { value: `junction:${j.junction_id}` },
        `Cả nút giao ${j.name_vi} / Whole junction ${j.name_en}`));
      for (const c of j.cameras) {
        inJunction.add(`${c.agent_id}/${c.source_id}`);
        group.append(el("option", { value: `camera:${c.agent_id}/${c.source_id}` }, siteName(c.agent_id, c.source_id)));
      }
      select.append(group);
    }
    const others = page.sites.filter((s) => s.kind === "camera" && !inJunction.has(`${s.agent_id}/${s.id}`));
    if (others.length) {
      const group = el("optgroup", { label: "Camera khác / Other cameras" });
      for (const s of others) group.append(el("option", { value: `camera:${s.agent_id}/${s.id}` }, siteName(s.agent_id, s.id)));
      select.append(group);
    }
    const wanted = new URLSearchParams(location.search).get("camera");
    if (wanted && [...select.options].some((o) => o.value === wanted)) select.value = wanted;
  }

  function selection() {
    // { cameras: [[agent, source]...] | null (all), junction: id | null, label }
    const value = $("camera").value;
    if (value.startsWith("junction:")) {
      const id = value.slice("junction:".length);
      const j = page.junctions.find((x) => x.junction_id === id);
      return { junction: id, cameras: j.cameras.map((c) => [c.agent_id, c.source_id]), label: `${j.name_vi} / ${j.name_en}` };
    }
    if (value.startsWith("camera:")) {
      const [agent, source] = value.slice("camera:".length).split("/");
      return { junction: null, cameras: [[agent, source]], label: siteName(agent, source) };
    }
    return { junction: null, cameras: null, label: "Tất cả camera / All cameras" };
  }

  function query(params) {
    const q = new URLSearchParams();
    for (const [key, value] of Object.entries(params)) {
      if (Array.isArray(value)) value.forEach((v) => q.append(key, v));
      else if (value !== null && value !== undefined) q.set(key, value);
    }
    return q.toString();
  }

  const cameraParams = (camera) => (camera ? { agent_id: camera[0], source_id: camera[1] } : {});

  // ---- counts over time ------------------------------------------------------------------------
  async function loadCounts(sel, range, signal) {
    // Per bucket: counts per class and per direction, and the analysed/expected seconds behind them. A junction
    // adds up its cameras (one request per camera and grouping, merged here).
    const targets = sel.cameras || [null];
    const buckets = new Map();
    const slot = (iso) => {
      if (!buckets.has(iso)) buckets.set(iso, { bucket: iso, classes: {}, in: 0, out: 0, analysed: 0, expected: 0 });
      return buckets.get(iso);
    };
    await Promise.all(targets.flatMap((camera) => ["vehicle_class", "direction"].map(async (group) => {
      const base = { ...cameraParams(camera), start: range.start, end: range.end, bucket: range.bucket, timezone: TZ };
      const rows = await api(`/api/v1/counts?${query({ ...base, group_by: group })}`, { signal });
      const seen = new Set();
      for (const row of rows) {
        const b = slot(row.bucket);
        if (group === "vehicle_class") {
          if (row.vehicle_class) b.classes[row.vehicle_class] = (b.classes[row.vehicle_class] || 0) + row.count;
          if (!seen.has(row.bucket)) { // the bucket's quality repeats on each class row: count it once
            seen.add(row.bucket);
            b.analysed += row.analysed_s || 0;
            b.expected += row.expected_s || 0;
          }
        } else if (row.direction === "in" || row.direction === "out") {
          b[row.direction] += row.count;
        }
      }
    })));
    return [...buckets.values()].sort((a, b) => new Date(a.bucket) - new Date(b.bucket));
  }

  const totalOf = (b) => Object.values(b.classes).reduce((s, n) => s + n, 0);

  function axisLabels(root, rows, x, band, height, bottom, bucket) {
    const every = Math.max(1, Math.ceil(rows.length / 8));
    rows.forEach((row, i) => {
      if (i % every) return;
      root.append(svg("text", { x: x(i) + band / 2, y: height - bottom + 16, "text-anchor": "middle" },
        bucketLabel(row.bucket, bucket)));
    });
  }

  function yAxis(root, max, y, left, width, right) {
    const step = niceStep(max);
    for (let v = 0; v <= max; v += step) {
      root.append(svg("line", { x1: left, x2: width - right, y1: y(v), y2: y(v), class: "grid" }));
      root.append(svg("text", { x: left - 6, y: y(v) + 4, "text-anchor": "end" }, fmtNumber(v)));
    }
  }

  function niceStep(max) {
    const raw = Math.max(1, max) / 4;
    const power = 10 ** Math.floor(Math.log10(raw));
    const step = [1, 2, 5, 10].map((m) => m * power).find((s) => s >= raw);
    return Math.max(1, step);
  }

  function chartFrame(container, id, label, height = 260) {
    const width = Math.max(640, container.clientWidth - 2 || 900);
    const root = svg("svg", { width, height, viewBox: `0 0 ${width} ${height}`, role: "img", id, "aria-label": label });
    return { root, width, height, left: 48, right: 12, top: 12, bottom: 30 };
  }

  function drawClassChart(rows, bucket, classes) {
    const container = $("class-chart");
    const f = chartFrame(container, "class-svg", "Lưu lượng theo loại phương tiện / Counts by vehicle class");
    const max = Math.max(1, ...rows.map(totalOf));
    const band = (f.width - f.left - f.right) / Math.max(1, rows.length);
    const x = (i) => f.left + i * band;
    const y = (v) => f.top + (1 - v / max) * (f.height - f.top - f.bottom);
    yAxis(f.root, max, y, f.left, f.width, f.right);
    rows.forEach((row, i) => {
      let base = 0;
      for (const cls of classes) {
        const n = row.classes[cls] || 0;
        if (!n) continue;
        const rect = svg("rect", {
          x: x(i) + band * 0.1, width: Math.max(1, band * 0.8), y: y(base + n), height: y(base) - y(base + n),
          class: `bar cls-${cls}`, "data-bucket": row.bucket, "data-class": cls, "data-count": n,
        });
        rect.append(svg("title", {}, `${bucketLabel(row.bucket, bucket)} · ${CLASS_NAMES[cls][0]} / ${CLASS_NAMES[cls][1]}: ${fmtNumber(n)}`));
        f.root.append(rect);
        base += n;
      }
    });
    axisLabels(f.root, rows, x, band, f.height, f.bottom, bucket);
    f.root.append(svg("line", { x1: f.left, x2: f.width - f.right, y1: y(0), y2: y(0), class: "axis" }));
    container.replaceChildren(f.root);
    const legend = $("class-legend");
    legend.replaceChildren(...classes.map((cls) => {
      const item = el("li");
      item.append(el("span", { class: `key cls-${cls}` }), CLASS_NAMES[cls][0], " ",
        el("span", { class: "en" }, `/ ${CLASS_NAMES[cls][1]}`));
      return item;
    }));
  }

  function drawDirectionChart(rows, bucket) {
    const container = $("direction-chart");
    const f = chartFrame(container, "direction-svg", "Lưu lượng theo hướng vào và ra / Counts by direction, in and out");
    const max = Math.max(1, ...rows.map((r) => Math.max(r.in, r.out)));
    const band = (f.width - f.left - f.right) / Math.max(1, rows.length);
    const x = (i) => f.left + i * band;
    const y = (v) => f.top + (1 - v / max) * (f.height - f.top - f.bottom);
    yAxis(f.root, max, y, f.left, f.width, f.right);
    for (const dir of ["in", "out"]) {
      const points = rows.map((r, i) => `${x(i) + band / 2},${y(r[dir])}`).join(" ");
      if (rows.length) f.root.append(svg("polyline", { points, class: `dir-line dir-${dir}` }));
      rows.forEach((r, i) => {
        const mark = svg("circle", { cx: x(i) + band / 2, cy: y(r[dir]), r: 3, class: `dir-point dir-${dir}`, "data-count": r[dir] });
        mark.append(svg("title", {}, `${bucketLabel(r.bucket, bucket)} · ${dir === "in" ? "Vào / In" : "Ra / Out"}: ${fmtNumber(r[dir])}`));
        f.root.append(mark);
      });
    }
    axisLabels(f.root, rows, x, band, f.height, f.bottom, bucket);
    f.root.append(svg("line", { x1: f.left, x2: f.width - f.right, y1: y(0), y2: y(0), class: "axis" }));
    container.replaceChildren(f.root);
  }

  function headCell(vi, en, numeric = true) {
    const th = el("th", { scope: "col", class: numeric ? "num" : "" }, vi);
    th.append(" ", el("span", { class: "en" }, `/ ${en}`));
    return th;
  }

  function fillCountsTable(rows, bucket, classes) {
    const head = el("tr");
    head.append(headCell("Thời gian", "Time", false), ...classes.map((c) => headCell(...CLASS_NAMES[c])),
      headCell("Vào", "In"), headCell("Ra", "Out"), headCell("Tổng", "Total"), headCell("Độ phủ", "Coverage"));
    $("counts-table").tHead.replaceChildren(head);
    $("counts-table").tBodies[0].replaceChildren(...rows.map((row) => {
      const tr = el("tr", { "data-bucket": row.bucket });
      const coverage = row.expected ? `${fmtNumber((100 * row.analysed) / row.expected, 0)}%` : "—";
      tr.append(el("td", {}, bucketLabel(row.bucket, bucket)),
        ...classes.map((c) => el("td", { class: "num", "data-class": c }, fmtNumber(row.classes[c] || 0))),
        el("td", { class: "num" }, fmtNumber(row.in)), el("td", { class: "num" }, fmtNumber(row.out)),
        el("td", { class: "num total" }, fmtNumber(totalOf(row))), el("td", { class: "num" }, coverage));
      return tr;
    }));
  }

  async function showCounts(sel, range, load) {
    const rows = await loadCounts(sel, range, load.signal);
    if (!load.current()) return;
    const classes = CLASS_ORDER.filter((c) => rows.some((r) => r.classes[c]));
    const total = rows.reduce((s, r) => s + totalOf(r), 0);
    $("counts-summary").textContent = rows.length
      ? `${sel.label}: ${fmtNumber(total)} lượt qua / crossings`
      : "Không có dữ liệu đếm trong khoảng này. / No counts in this period.";
    drawClassChart(rows, range.bucket, classes);
    drawDirectionChart(rows, range.bucket);
    fillCountsTable(rows, range.bucket, classes);
  }

  function clearCounts() {
    $("counts-summary").textContent = "Không tải được số liệu đếm. / The counts could not be loaded.";
    for (const id of ["class-chart", "class-legend", "direction-chart"]) $(id).replaceChildren();
    $("counts-table").tHead.replaceChildren();
    $("counts-table").tBodies[0].replaceChildren();
  }

  // ---- peak hours ------------------------------------------------------------------------------
  async function showPeakHours(sel, range, load) {
    const params = { start: range.start, end: range.end };
    if (sel.junction) params.junction_id = sel.junction;
    else if (sel.cameras) Object.assign(params, cameraParams(sel.cameras[0]));
    const body = await api(`/api/v1/dashboards/traffic/peak-hours?${query(params)}`, { signal: load.signal });
    if (!load.current()) return;
    const rows = body.items;
    const hourText = (h) => `${String(h).padStart(2, "0")}:00`;
    $("peak-summary").textContent = body.busiest_hour === null
      ? "Chưa có lượt qua nào trong khoảng này. / No crossings in this period."
      : `Giờ cao điểm / Peak hour: ${hourText(body.busiest_hour)}–${hourText((body.busiest_hour + 1) % 24)} · `
        + `${fmtNumber(rows[body.busiest_hour].count)} lượt / crossings`;
    const container = $("peak-chart");
    const f = chartFrame(container, "peak-svg", "Lượt qua theo giờ trong ngày / Crossings per hour of the day", 220);
    const max = Math.max(1, ...rows.map((r) => r.count));
    const band = (f.width - f.left - f.right) / 24;
    const x = (h) => f.left + h * band;
    const y = (v) => f.top + (1 - v / max) * (f.height - f.top - f.bottom);
    yAxis(f.root, max, y, f.left, f.width, f.right);
    for (const r of rows) {
      const busiest = r.hour === body.busiest_hour;
      const rect = svg("rect", {
        x: x(r.hour) + band * 0.12, width: band * 0.76, y: y(r.count), height: y(0) - y(r.count),
        class: busiest ? "hour-bar busiest" : "hour-bar", "data-hour": r.hour, "data-count": r.count,
      });
      rect.append(svg("title", {}, `${hourText(r.hour)}: ${fmtNumber(r.count)}`));
      f.root.append(rect);
      if (r.hour % 2 === 0) {
        f.root.append(svg("text", { x: x(r.hour) + band / 2, y: f.height - f.bottom + 16, "text-anchor": "middle" }, `${r.hour}h`));
      }
    }
    f.root.append(svg("line", { x1: f.left, x2: f.width - f.right, y1: y(0), y2: y(0), class: "axis" }));
    container.replaceChildren(f.root);
    $("peak-table").tBodies[0].replaceChildren(...rows.map((r) => {
      const tr = el("tr", { "data-hour": r.hour });
      tr.append(el("td", {}, `${hourText(r.hour)}–${hourText((r.hour + 1) % 24)}`),
        el("td", { class: "num" }, fmtNumber(r.count)), el("td", { class: "num" }, fmtNumber(r.days)),
        el("td", { class: "num" }, fmtNumber(r.mean, 1)));
      return tr;
    }));
  }

  function clearPeakHours() {
    $("peak-summary").textContent = "Không tải được giờ cao điểm. / The peak hours could not be loaded.";
    $("peak-chart").replaceChildren();
    $("peak-table").tBodies[0].replaceChildren();
  }

  // ---- violations per junction -----------------------------------------------------------------
  function ruleText(rule) {
    const unit = wordsOf(rule).unit;
    return `Quy tắc ${rule.id}: cảnh báo khi số vi phạm vượt trung bình ${rule.window_periods} ${unit[0]} trước hơn `
      + `${fmtNumber(rule.threshold_pct, 0)}% (ít nhất ${rule.min_count} vi phạm). / Rule ${rule.id}: alerts when `
      + `violations exceed the average of the previous ${rule.window_periods} ${unit[1]} by more than `
      + `${rule.threshold_pct}% (at least ${rule.min_count}).`;
  }

  function periodLabel(p, rule) {
    const text = fmtTime(p.start);
    return rule.period === "1h" ? `${text.slice(0, 5)} ${text.slice(11, 16)}` : text.slice(0, 10);
  }

  function drawJunction(container, j) {
    const periods = j.periods;
    const f = chartFrame(container, `junction-svg-${j.junction_id}`,
      `Vi phạm tại ${j.name_vi} so với trung bình và ngưỡng / Violations at ${j.name_en} against the average and threshold`, 240);
    f.root.classList.add("junction-svg");
    f.right = 56;
    const max = Math.max(1, ...periods.map((p) => Math.max(p.count, p.threshold || 0)));
    const band = (f.width - f.left - f.right) / Math.max(1, periods.length);
    const x = (i) => f.left + i * band;
    const y = (v) => f.top + (1 - v / max) * (f.height - f.top - f.bottom);
    yAxis(f.root, max, y, f.left, f.width, f.right);
    periods.forEach((p, i) => {
      const rect = svg("rect", {
        x: x(i) + band * 0.15, width: band * 0.7, y: y(p.count), height: y(0) - y(p.count),
        class: p.above_threshold ? "violation-bar above" : "violation-bar", "data-start": p.start, "data-count": p.count,
      });
      const limit = p.threshold === null ? "—" : fmtNumber(p.threshold, 1);
      rect.append(svg("title", {}, `${periodLabel(p, j.rule)}: ${p.count} vi phạm / violations · ngưỡng / threshold ${limit}`));
      f.root.append(rect);
      if (p.baseline !== null) {
        f.root.append(svg("line", { x1: x(i), x2: x(i) + band, y1: y(p.baseline), y2: y(p.baseline), class: "baseline-seg" }));
      }
      if (p.threshold !== null) {
        f.root.append(svg("line", { x1: x(i), x2: x(i) + band, y1: y(p.threshold), y2: y(p.threshold), class: "threshold-seg" }));
      }
    });
    const last = [...periods].reverse().find((p) => p.threshold !== null);
    if (last) {
      f.root.append(svg("text", { x: f.width - f.right + 4, y: y(last.threshold) + 4, class: "threshold-label" },
        `+${fmtNumber(j.rule.threshold_pct, 0)}%`));
    }
    axisLabels(f.root, periods.map((p) => ({ bucket: p.start })), x, band, f.height, f.bottom, j.rule.period === "1h" ? "1h" : "1d");
    f.root.append(svg("line", { x1: f.left, x2: f.width - f.right, y1: y(0), y2: y(0), class: "axis" }));
    container.replaceChildren(f.root);
  }

  function junctionTable(j, id) {
    const table = el("table", { id, hidden: "" });
    const w = wordsOf(j.rule);
    const caption = el("caption", {}, `Vi phạm theo ${w.unit[0]}: ${j.name_vi} `);
    caption.append(el("span", { class: "en" }, `/ Violations per ${w.column[1].toLowerCase()}: ${j.name_en}`));
    const head = el("tr");
    head.append(headCell(...w.column, false), headCell("Vi phạm", "Violations"), headCell("Trung bình", "Average"),
      headCell("Ngưỡng", "Threshold"), headCell("Độ phủ", "Coverage"), headCell("Đánh giá", "Verdict", false));
    const thead = el("thead");
    thead.append(head);
    const tbody = el("tbody");
    for (const p of j.periods) {
      const tr = el("tr", { "data-start": p.start, class: p.above_threshold ? "above" : "" });
      const [css, vi, en] = STATE_CHIPS[p.state] || STATE_CHIPS.unknown;
      const verdict = el("td");
      verdict.append(el("span", { class: `chip ${css}` }, `${vi} / ${en}`));
      tr.append(el("td", {}, periodLabel(p, j.rule)), el("td", { class: "num count" }, fmtNumber(p.count)),
        el("td", { class: "num" }, fmtNumber(p.baseline, 1)), el("td", { class: "num threshold" }, fmtNumber(p.threshold, 1)),
        el("td", { class: "num" }, `${fmtNumber(p.coverage * 100, 0)}%`), verdict);
      tbody.append(tr);
    }
    table.append(caption, thead, tbody);
    return table;
  }

  function junctionSection(j) {
    const section = el("section", { class: "junction", "data-junction": j.junction_id, "aria-labelledby": `jt-${j.junction_id}` });
    const title = el("h3", { id: `jt-${j.junction_id}` }, j.name_vi);
    title.append(" ", el("span", { class: "en" }, `/ ${j.name_en}`));
    section.append(title);
    if (!j.rule) {
      section.append(el("p", { class: "note" }, "Không có quy tắc vi phạm tăng nào theo dõi nút giao này. / No violation increase rule watches this junction."));
      return section;
    }
    section.append(el("p", { class: "note rule-summary" }, ruleText(j.rule)));
    const today = j.periods[j.periods.length - 1];
    if (today) {
      const [css, vi, en] = STATE_CHIPS[today.state] || STATE_CHIPS.unknown;
      const line = el("p", { class: "today-summary" });
      const why = statusText(today.status, j.rule);
      const latest = wordsOf(j.rule).latest;
      line.append(el("span", { class: `chip ${css}` }, `${vi} / ${en}`), " ",
        `${latest[0]} / ${latest[1]}: ${fmtNumber(today.count)} vi phạm / violations; trung bình / average `
        + `${fmtNumber(today.baseline, 1)}; ngưỡng / threshold ${fmtNumber(today.threshold, 1)}`
        + (why ? ` (${why[0]} / ${why[1]})` : ""));
      section.append(line);
    }
    const chart = el("div", { class: "chart" });
    section.append(chart);
    const tableId = `junction-table-${j.junction_id}`;
    const toggle = el("button", { type: "button", class: "secondary table-toggle", "aria-pressed": "false", "aria-controls": tableId },
      "Xem dạng bảng ");
    toggle.append(el("span", { class: "en" }, "/ Show as a table"));
    const table = junctionTable(j, tableId);
    toggle.addEventListener("click", () => toggleTable(toggle, table));
    section.append(toggle, table);
    requestAnimationFrame(() => drawJunction(chart, j)); // after layout, so the chart takes the panel's width
    return section;
  }

  function bilingualText(node, vi, en) {
    node.replaceChildren(vi, " ", el("span", { class: "en" }, `/ ${en}`));
  }

  function describeViolations(items, sel, range) {
    // The heading and notes say what the section shows, from the rules themselves: which periods (the last
    // SHOWN_PERIODS of each junction, not the chosen range), the average over how many and the +X% line.
    const rules = [...new Map(items.filter((j) => j.rule).map((j) => [j.rule.id, j.rule])).values()];
    const rule = rules.length === 1 ? rules[0] : null;
    const w = rule ? wordsOf(rule) : null;
    if (rule) {
      bilingualText($("violations-title"), `Vi phạm theo nút giao so với trung bình ${rule.window_periods} ${w.unit[0]} trước`,
        `Violations per junction against the average of the previous ${rule.window_periods} ${w.unit[1]}`);
      const pct = fmtNumber(rule.threshold_pct, 0);
      bilingualText($("violations-note"),
        `Mỗi cột là số vi phạm của ${w.one[0]}; đường liền là trung bình ${rule.window_periods} ${w.unit[0]} trước đó `
        + `(những ${w.unit[0]} đủ dữ liệu), đường đứt là ngưỡng cảnh báo (trung bình + ${pct}%). Cột đỏ: vượt ngưỡng. `
        + `Số liệu tính bằng chính quy tắc cảnh báo ${rule.id}.`,
        `Each bar is ${w.one[1]}'s violations; the solid line is the average of the previous ${rule.window_periods} `
        + `${w.unit[1]} (those with enough data), the dashed line the alert threshold (average + ${pct}%). Red bars: `
        + `above the threshold. Computed by the alert rule ${rule.id} itself.`);
    } else {
      bilingualText($("violations-title"), "Vi phạm theo nút giao so với trung bình của quy tắc cảnh báo",
        "Violations per junction against the alert rule's average");
      bilingualText($("violations-note"),
        "Mỗi cột là số vi phạm của một kỳ (ngày hoặc giờ, theo quy tắc của nút giao); đường liền là trung bình các "
        + "kỳ trước đó, đường đứt là ngưỡng cảnh báo của quy tắc (ghi dưới tên từng nút giao). Cột đỏ: vượt ngưỡng. "
        + "Số liệu tính bằng chính quy tắc cảnh báo.",
        "Each bar is one period's violations (a day or an hour, by the junction's rule); the solid line is the "
        + "average of the periods before, the dashed line the rule's alert threshold (stated under each junction). "
        + "Red bars: above the threshold. Computed by the alert rule itself.");
    }
    const periods = w ? `${SHOWN_PERIODS} ${w.unit[0]}` : `${SHOWN_PERIODS} kỳ`;
    const periodsEn = w ? `${SHOWN_PERIODS} ${w.unit[1]}` : `${SHOWN_PERIODS} periods`;
    const first = sel.junction ? " Nút giao đã chọn đứng đầu." : "";
    const firstEn = sel.junction ? " The chosen junction comes first." : "";
    if (range.custom) {
      const last = fmtTime(range.last).slice(0, 10);
      bilingualText($("violations-scope"),
        `Phần này gồm ${periods} gần nhất của mỗi nút giao tính đến hết ngày ${last} (ngày cuối của khoảng đã chọn), `
        + `với mọi camera của nút giao, không theo camera đã chọn.${first}`,
        `This section covers the last ${periodsEn} of each junction up to the end of ${last} (the chosen range's `
        + `last day), with all of the junction's cameras, whatever camera is chosen.${firstEn}`);
    } else {
      bilingualText($("violations-scope"),
        `Phần này luôn gồm ${periods} gần nhất của mỗi nút giao tính đến nay, với mọi camera của nút giao, không `
        + `theo khoảng thời gian và camera đã chọn ở trên.${first}`,
        `This section always covers the last ${periodsEn} of each junction up to now, with all of the junction's `
        + `cameras, whatever period and camera are chosen above.${firstEn}`);
    }
  }

  async function showJunctions(sel, range, load) {
    const params = { periods: SHOWN_PERIODS };
    if (range.custom) params.end = range.last; // judged as of the range's last day, not the day after it
    const body = await api(`/api/v1/dashboards/traffic/junctions?${query(params)}`, { signal: load.signal });
    if (!load.current()) return;
    let items = body.items;
    if (sel.junction) items = [...items.filter((j) => j.junction_id === sel.junction), ...items.filter((j) => j.junction_id !== sel.junction)];
    describeViolations(items, sel, range);
    $("junctions-empty").hidden = items.length > 0;
    $("junctions").replaceChildren(...items.map(junctionSection));
  }

  function clearJunctions() {
    $("junctions-empty").hidden = true;
    $("junctions").replaceChildren(el("p", { class: "note" },
      "Không tải được vi phạm theo nút giao. / The violations per junction could not be loaded."));
  }

  // ---- export ----------------------------------------------------------------------------------
  function download(href, name) {
    const link = el("a", { href, download: name || "", hidden: "" });
    document.body.append(link);
    link.click();
    link.remove();
  }

  function fileNameOf(response, fallback) {
    // The API's own name for its file (it says the range), from Content-Disposition.
    const match = /filename="([^"\/\\]+)"/.exec(response.headers.get("Content-Disposition") || "");
    return match ? match[1] : fallback;
  }

  function exportStatus(text, failed) {
    const status = $("export-status");
    status.textContent = text;
    status.classList.toggle("error", failed);
  }

  async function exportCsv() {
    // Fetched here (not a link the browser follows), so a refusal or an error is said on the page, not saved
    // as a "CSV"; then handed to the browser as a file. A junction: one export per camera, under one header.
    if (page.exporting) return;
    let range;
    try { range = chosenRange(); } catch (error) { showError($("page-error"), error.message); return; }
    const sel = selection();
    const base = { start: range.start, end: range.end, format: "csv" };
    const targets = sel.cameras || [null];
    page.exporting = true;
    exportStatus("Đang tạo tệp CSV… / Preparing the CSV…", false);
    try {
      const responses = await Promise.all(targets.map((camera) => (
        api(`/api/v1/counts/export?${query({ ...base, ...cameraParams(camera) })}`, { raw: true }))));
      let blob, name;
      if (responses.length === 1) {
        blob = new Blob([await responses[0].text()], { type: "text/csv" });
        name = fileNameOf(responses[0], `counts_${range.start.slice(0, 10)}_${range.end.slice(0, 10)}.csv`);
      } else {
        const lines = [];
        (await Promise.all(responses.map((r) => r.text()))).forEach((text, i) => {
          const rows = text.split("\r\n").filter((line) => line);
          lines.push(...(i === 0 ? rows : rows.slice(1)));
        });
        blob = new Blob([lines.join("\r\n") + "\r\n"], { type: "text/csv" });
        name = `counts_${sel.junction}_${range.start.slice(0, 10)}_${range.end.slice(0, 10)}.csv`;
      }
      const url = URL.createObjectURL(blob);
      download(url, name);
      setTimeout(() => URL.revokeObjectURL(url), 60000);
      exportStatus(`Đã tải tệp CSV: ${name} / The CSV is downloaded: ${name}`, false);
    } catch (error) {
      exportStatus(`Không tải được tệp CSV. / The CSV could not be downloaded. ${error.message}`, true);
    } finally {
      page.exporting = false;
    }
  }

  // ---- wiring ----------------------------------------------------------------------------------
  function toggleTable(button, table) {
    const show = button.getAttribute("aria-pressed") !== "true";
    button.setAttribute("aria-pressed", String(show));
    table.hidden = !show;
  }

  function customShown() {
    const custom = $("range").value === "custom";
    $("custom-start-field").hidden = !custom;
    $("custom-end-field").hidden = !custom;
  }

  async function refresh(event) {
    // Each refresh has a number and aborts the one before; each part draws only if its refresh is still the
    // newest, so a slow earlier answer never replaces a newer one. A part that fails is cleared, not left
    // showing the choice before under the new range label.
    if (event) event.preventDefault();
    showError($("page-error"), "");
    let range;
    try { range = chosenRange(); } catch (error) { showError($("page-error"), error.message); return; }
    const sel = selection();
    const number = ++page.load;
    if (page.controller) page.controller.abort();
    const controller = new AbortController();
    page.controller = controller;
    const load = { signal: controller.signal, current: () => number === page.load };
    $("range-label").textContent = `${sel.label} · ${fmtTime(range.start)} → ${fmtTime(range.end)}`;
    document.body.dataset.loaded = "false";
    const parts = [[showCounts, clearCounts], [showPeakHours, clearPeakHours], [showJunctions, clearJunctions]];
    const results = await Promise.allSettled(parts.map(([show]) => show(sel, range, load)));
    if (!load.current()) return;
    const messages = [];
    results.forEach((result, i) => {
      if (result.status !== "rejected") return;
      parts[i][1]();
      if (!messages.includes(result.reason.message)) messages.push(result.reason.message);
    });
    showError($("page-error"), messages.join(" "));
    page.controller = null;
    document.body.dataset.loaded = "true";
  }

  window.IOC.shell({
    page: "traffic",
    onReady: async () => {
      $("start-date").value = addDays(todayVn(), -6);
      $("end-date").value = todayVn();
      try {
        const [sites, junctions] = await Promise.all([
          api("/api/v1/sites"), api("/api/v1/dashboards/traffic/junctions?periods=1"),
        ]);
        page.sites = sites;
        page.junctions = junctions.items;
      } catch (error) {
        showError($("page-error"), error.message);
      }
      fillCameraChoices();
      $("range").addEventListener("change", customShown);
      $("filters").addEventListener("submit", refresh);
      $("export-csv").addEventListener("click", exportCsv);
      $("counts-table-toggle").addEventListener("click", (e) => toggleTable(e.currentTarget, $("counts-table")));
      $("peak-table-toggle").addEventListener("click", (e) => toggleTable(e.currentTarget, $("peak-table")));
      await refresh();
    },
  });
})();
