// The map page: every camera and sensor of the user's area at its coordinates, coloured by state (with a
// shape per kind and a symbol per state, so colour is never the only cue), clustered when dense, filtered by
// kind, area and state; the same sites as a list for keyboard and screen-reader users; a details panel with the
// live view or sensor page link (only for a user whose roles may open that page). Leaflet and markercluster are
// served by central from npm (no CDN). Every server value goes into the page as text, Leaflet's tooltips and
// attribution included. The periodic refresh changes only what changed (markers, list rows, details, the count),
// so keyboard focus, an opened (spiderfied) cluster and screen readers are left alone.
"use strict";

(() => {
  const { $, el, api, fmtTime, fmtNumber, bilingual, setText, morphChildren, reconcile } = IOC;
  const STATES = IOC.SOURCE_STATES;
  const KINDS = { camera: { vi: "Camera", en: "Camera" }, sensor: { vi: "Cảm biến", en: "Sensor" } };
  // A sensor level's chip by the severity of the rule level the reading is in (never by its place in the list).
  const LEVEL_CHIP = { notice: "warn", warning: "bad", critical: "bad" };
  const ALL = "";

  let map = null;
  let cluster = null;
  let config = null;
  let sites = [];
  let selectedKey = null;
  let roles = new Set(); // the signed-in user's roles (the shell's ``me``)
  const markers = new Map(); // key -> L.Marker

  const keyOf = (site) => `${site.agent_id}/${site.id}`;

  function mayOpen(pageKey) {
    // Whether the user's roles may open one of the operator pages (the same list the navigation uses).
    const page = IOC.PAGES.find((p) => p.key === pageKey);
    return Boolean(page) && page.roles.some((r) => roles.has(r));
  }

  function escapeText(text) {
    // For the one place Leaflet takes HTML from a string (the attribution control): the text, shown as text.
    return String(text).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
  }

  function reconcileRows(body, freshRows) {
    // The rows of ``body`` become ``freshRows`` (keyed by data-key): a row of a site already listed is kept and
    // changed in place, new rows are added, rows of sites no longer shown removed, nothing else moves.
    reconcile(body, [...body.rows], freshRows, (row) => row.dataset.key || "", () => body.firstChild);
  }

  function stateLabel(state) {
    const s = STATES[state] || STATES.unknown;
    return `${s.vi} / ${s.en}`;
  }

  function chip(state) {
    const s = STATES[state] || STATES.unknown;
    const node = el("span", { class: `chip ${s.chip}` }, `${s.symbol} ${s.vi}`);
    node.append(el("span", { class: "en" }, ` / ${s.en}`));
    return node;
  }

  function levelChip(sensor) {
    if (!sensor || !sensor.level) return null;
    const tone = sensor.level === "normal" ? "ok" : LEVEL_CHIP[sensor.severity] || "bad";
    const node = el("span", { class: `chip ${tone} level-chip`, "data-severity": sensor.severity || "" },
      sensor.level_label_vi);
    node.append(el("span", { class: "en" }, ` / ${sensor.level_label_en}`));
    return node;
  }

  function readingText(reading) {
    if (!reading) return "—";
    const digits = Math.abs(reading.value) < 10 && !Number.isInteger(reading.value) ? 2 : 1;
    return `${reading.name_vi}: ${fmtNumber(reading.value, digits)}${reading.unit ? ` ${reading.unit}` : ""}`;
  }

  function markerIcon(site) {
    const s = STATES[site.state] || STATES.unknown;
    const alert = site.sensor && site.sensor.level && site.sensor.level !== "normal";
    const node = el("span", {
      class: `mk mk-${site.kind} mk-${site.state}${alert ? " mk-alert" : ""}`,
      "data-key": keyOf(site),
      "data-state": site.state,
    });
    node.append(el("span", { "aria-hidden": "true" }, s.symbol));
    node.append(el("span", { class: "visually-hidden" }, `${site.name}: ${stateLabel(site.state)}`));
    return L.divIcon({ html: node, className: "mk-wrap", iconSize: [28, 28], iconAnchor: [14, 14] });
  }

  function clusterIcon(group) {
    const children = group.getAllChildMarkers();
    const rank = { down: 3, stalled: 2, unknown: 1, live: 0 };
    let worst = "live";
    for (const m of children) if (rank[m.options.siteState] > rank[worst]) worst = m.options.siteState;
    const node = el("span", { class: `mk-cluster mk-${worst}`, "data-count": String(children.length) });
    node.append(el("span", { "aria-hidden": "true" }, String(children.length)));
    node.append(el("span", { class: "visually-hidden" },
      `${children.length} điểm, tệ nhất: ${stateLabel(worst)} / ${children.length} sites`));
    return L.divIcon({ html: node, className: "mk-wrap", iconSize: [36, 36] });
  }

  function filters() {
    const kinds = new Set([...document.querySelectorAll('input[name="kind"]:checked')].map((i) => i.value));
    const states = new Set([...document.querySelectorAll('input[name="state"]:checked')].map((i) => i.value));
    return { kinds, states, province: $("filter-province").value, district: $("filter-district").value,
      commune: $("filter-commune").value };
  }

  function inArea(site, f) {
    if (f.province !== ALL && site.province !== f.province) return false;
    if (f.district !== ALL && site.district !== f.district) return false;
    if (f.commune !== ALL && site.commune !== f.commune) return false;
    return true;
  }

  function matching() {
    const f = filters();
    return sites.filter((s) => f.kinds.has(s.kind) && f.states.has(s.state) && inArea(s, f));
  }

  function fillSelect(select, values, keep) {
    // The options are rebuilt only when the areas changed (a refresh must not disturb a select in use).
    const previous = keep ? select.value : ALL;
    const current = [...select.options].map((o) => o.value);
    if (current.length !== values.length + 1 || values.some((v, i) => current[i + 1] !== v)) {
      select.replaceChildren(el("option", { value: ALL }, "Tất cả / All"));
      for (const v of values) select.append(el("option", { value: v }, v));
    }
    const wanted = values.includes(previous) ? previous : ALL;
    if (select.value !== wanted) select.value = wanted;
  }

  function distinct(list, field) {
    return [...new Set(list.map((s) => s[field]).filter((v) => v))].sort((a, b) => a.localeCompare(b, "vi"));
  }

  function refreshAreaSelects(keep) {
    fillSelect($("filter-province"), distinct(sites, "province"), keep);
    const province = $("filter-province").value;
    const inProvince = sites.filter((s) => province === ALL || s.province === province);
    fillSelect($("filter-district"), distinct(inProvince, "district"), keep);
    const district = $("filter-district").value;
    const inDistrict = inProvince.filter((s) => district === ALL || s.district === district);
    fillSelect($("filter-commune"), distinct(inDistrict, "commune"), keep);
  }

  function markerFor(site, changed) {
    // The site's marker, created once; its icon is redrawn only when what it shows changed (pushed to ``changed``
    // so the clusters holding it redraw theirs), and it is moved only when the site moved.
    const key = keyOf(site);
    let marker = markers.get(key);
    if (!marker) {
      marker = L.marker([site.lat, site.lon], { keyboard: true, title: site.name, siteState: site.state });
      marker.on("click", () => showDetails(key, false));
      markers.set(key, marker);
    }
    const alert = Boolean(site.sensor && site.sensor.level && site.sensor.level !== "normal");
    const look = JSON.stringify([site.kind, site.state, alert, site.name]);
    if (marker.look !== look) {
      marker.options.siteState = site.state;
      marker.options.title = site.name;
      marker.setIcon(markerIcon(site));
      if (marker.look !== undefined) changed.push(marker);
      marker.look = look;
    }
    const at = marker.getLatLng();
    if (at.lat !== site.lat || at.lng !== site.lon) marker.setLatLng([site.lat, site.lon]);
    return marker;
  }

  function render() {
    const shown = matching();
    const present = new Set(sites.map(keyOf));
    const remove = [];
    for (const [key, marker] of markers) {
      if (present.has(key)) continue;
      markers.delete(key);
      if (cluster.hasLayer(marker)) remove.push(marker);
    }
    const changed = [];
    const wanted = new Set(shown.map((site) => markerFor(site, changed)));
    for (const marker of markers.values()) if (!wanted.has(marker) && cluster.hasLayer(marker)) remove.push(marker);
    const add = [...wanted].filter((marker) => !cluster.hasLayer(marker));
    if (remove.length) cluster.removeLayers(remove);
    if (add.length) cluster.addLayers(add);
    if (changed.length) cluster.refreshClusters(changed);
    setText($("map-count"), `${shown.length} / ${sites.length} điểm được hiển thị / sites shown`);
    renderList(shown);
    if (selectedKey) showDetails(selectedKey, false, true);
  }

  function renderList(shown) {
    const body = $("map-list").querySelector("tbody");
    if (!shown.length) {
      const row = el("tr");
      row.append(el("td", { colspan: "5" }, "Không có điểm nào theo bộ lọc. / No site matches the filters."));
      reconcileRows(body, [row]);
      return;
    }
    reconcileRows(body, shown.map(siteRow));
  }

  function siteRow(site) {
    const key = keyOf(site);
    const row = el("tr", { "data-key": key });
    if (key === selectedKey) row.setAttribute("aria-current", "true");
    const nameCell = el("td");
    const button = el("button", { type: "button", class: "link-button" }, site.name);
    button.addEventListener("click", () => showDetails(key, true));
    nameCell.append(button);
    const kind = KINDS[site.kind] || KINDS.camera;
    const kindCell = el("td", {}, kind.vi);
    kindCell.append(el("span", { class: "en" }, ` / ${kind.en}`));
    const stateCell = el("td");
    stateCell.append(chip(site.state));
    const valueCell = el("td");
    if (site.sensor) {
      valueCell.append(readingText(site.sensor.reading), " ");
      const level = levelChip(site.sensor);
      if (level) valueCell.append(level);
    } else {
      valueCell.textContent = site.detail.text_vi;
    }
    row.append(nameCell, kindCell, el("td", {}, site.area_path || site.area || "—"), stateCell, valueCell);
    return row;
  }

  function fact(list, vi, en, value) {
    const dt = el("dt", {}, vi);
    dt.append(el("span", { class: "en" }, ` / ${en}`));
    const dd = el("dd");
    if (value instanceof Node) dd.append(value); else dd.textContent = value;
    list.append(dt, dd);
  }

  function siteLink(site) {
    // The live view of a camera or the charts of a sensor, only when the user's roles may open that page.
    if (site.kind === "camera") {
      return mayOpen("live") && site.detail.link
        ? bilingual("a", "Xem trực tiếp", "Live view", { href: site.detail.link, id: "map-details-link" }) : null;
    }
    return mayOpen("sensors") && site.sensor && site.sensor.link
      ? bilingual("a", "Xem biểu đồ cảm biến", "Sensor charts", { href: site.sensor.link, id: "map-details-link" })
      : null;
  }

  function showDetails(key, fromList, quiet = false) {
    const site = sites.find((s) => keyOf(s) === key);
    const panel = $("map-details");
    const body = $("map-details-body");
    if (!site) {
      const hadFocus = body.contains(document.activeElement);
      selectedKey = null;
      body.hidden = true;
      body.replaceChildren();
      $("map-details-empty").hidden = false;
      for (const row of document.querySelectorAll("#map-list tbody tr[aria-current]")) row.removeAttribute("aria-current");
      if (hadFocus) panel.focus(); // the site is gone: focus stays in the panel rather than falling to <body>
      return;
    }
    selectedKey = key;
    $("map-details-empty").hidden = true;
    body.hidden = false;
    const facts = el("dl", { class: "facts" });
    const kind = KINDS[site.kind] || KINDS.camera;
    fact(facts, "Loại", "Kind", `${kind.vi} / ${kind.en}`);
    fact(facts, "Mã", "Id", key);
    fact(facts, "Khu vực", "Area", site.area_path || site.area || "—");
    fact(facts, "Trạng thái", "State", chip(site.state));
    fact(facts, "Chi tiết", "Detail", `${site.detail.text_vi} / ${site.detail.text_en}`);
    fact(facts, "Nhận lần cuối", "Last heard", fmtTime(site.detail.last_heard));
    if (site.kind === "camera") {
      fact(facts, "Khung hình/giây", "Frames/s", site.detail.fps === null ? "—" : fmtNumber(site.detail.fps, 1));
    }
    if (site.sensor) {
      fact(facts, "Giá trị", "Value", readingText(site.sensor.reading));
      fact(facts, "Mức", "Level", levelChip(site.sensor) || "—");
      if (site.sensor.threshold !== null) fact(facts, "Ngưỡng", "Threshold", fmtNumber(site.sensor.threshold, 2));
      const others = site.sensor.readings.filter((r) => !site.sensor.reading || r.metric !== site.sensor.reading.metric);
      if (others.length) {
        const list = el("ul", { class: "readings" });
        for (const r of others) list.append(el("li", {}, readingText(r)));
        fact(facts, "Số đo khác", "Other readings", list);
      }
    }
    const fresh = [el("h3", { id: "map-details-name" }, site.name), facts];
    const link = siteLink(site);
    if (link) fresh.push(link);
    morphChildren(body, fresh); // a refresh changes only what changed: a focused link keeps its focus
    for (const row of document.querySelectorAll("#map-list tbody tr")) {
      const current = row.dataset.key === key;
      if (current !== row.hasAttribute("aria-current")) {
        if (current) row.setAttribute("aria-current", "true"); else row.removeAttribute("aria-current");
      }
    }
    if (quiet) return;
    const marker = markers.get(key);
    if (marker && cluster.hasLayer(marker)) cluster.zoomToShowLayer(marker, () => {});
    if (fromList) panel.focus();
  }

  function buildStateFilters() {
    const box = $("filter-states");
    for (const [state, s] of Object.entries(STATES)) {
      const label = el("label", { class: "state-option" });
      const input = el("input", { type: "checkbox", name: "state", value: state, checked: "" });
      label.append(input, el("span", { class: `mk mk-legend mk-${state}`, "aria-hidden": "true" }, s.symbol),
        ` ${s.vi} `, el("span", { class: "en" }, `/ ${s.en}`));
      box.append(label);
    }
  }

  function buildLegend() {
    const list = $("map-legend-list");
    for (const [state, s] of Object.entries(STATES)) {
      const item = el("li");
      item.append(el("span", { class: `mk mk-legend mk-${state}`, "aria-hidden": "true" }, s.symbol),
        ` ${s.vi} `, el("span", { class: "en" }, `/ ${s.en}`));
      list.append(item);
    }
    const camera = el("li");
    camera.append(el("span", { class: "mk mk-legend mk-camera mk-unknown", "aria-hidden": "true" }, "▪"),
      " Camera (ô vuông) ", el("span", { class: "en" }, "/ Camera (square)"));
    const sensor = el("li");
    sensor.append(el("span", { class: "mk mk-legend mk-sensor mk-unknown", "aria-hidden": "true" }, "•"),
      " Cảm biến (tròn) ", el("span", { class: "en" }, "/ Sensor (round)"));
    const alert = el("li");
    alert.append(el("span", { class: "mk mk-legend mk-sensor mk-live mk-alert", "aria-hidden": "true" }, "✓"),
      " Viền đỏ: đang ở mức cảnh báo ", el("span", { class: "en" }, "/ Red ring: at an alert level"));
    list.append(camera, sensor, alert);
  }

  async function loadBoundaries() {
    if (!config.has_boundaries) return;
    try {
      const geojson = await api("/api/v1/map/boundaries");
      L.geoJSON(geojson, {
        interactive: false,
        style: (f) => ({
          color: f.properties.level === "province" ? "#12263f" : "#4a5563",
          weight: f.properties.level === "province" ? 3 : 1.5,
          dashArray: f.properties.level === "commune" ? "4 3" : null,
          fillColor: "#ffffff",
          fillOpacity: f.properties.level === "province" ? 0.35 : 0,
        }),
        onEachFeature: (f, layer) => {
          if (f.properties.level !== "province") {
            // An element, not a string: Leaflet puts a string tooltip in as HTML.
            layer.bindTooltip(el("span", {}, String(f.properties.name)),
              { permanent: true, direction: "center", className: "area-label", pane: "area-labels" });
          }
        },
      }).addTo(map);
    } catch (error) {
      IOC.showError($("map-error"), error.message);
    }
  }

  async function refresh(first) {
    try {
      sites = await api("/api/v1/map/sites");
      IOC.showError($("map-error"), "");
    } catch (error) {
      IOC.showError($("map-error"), error.message);
      return;
    }
    refreshAreaSelects(!first);
    render();
    setText($("map-updated"), `Cập nhật / Updated: ${fmtTime(new Date())}`);
    if (first && sites.length) map.fitBounds(L.latLngBounds(sites.map((s) => [s.lat, s.lon])).pad(0.2), { maxZoom: 16 });
  }

  async function start(me) {
    roles = new Set((me && me.roles) || []);
    buildStateFilters();
    buildLegend();
    config = await api("/api/v1/map/config");
    map = L.map("map", {
      center: [config.center.lat, config.center.lon], zoom: config.zoom, minZoom: 3, maxZoom: 19, keyboard: true,
    });
    map.attributionControl.setPrefix("Leaflet");
    map.createPane("area-labels"); // under the markers (map.css), so a name never hides a camera
    if (config.tile_url) {
      // The attribution setting is plain text; Leaflet's attribution control takes HTML, so it goes in escaped.
      L.tileLayer(config.tile_url, { attribution: escapeText(config.tile_attribution || ""), maxZoom: 19 }).addTo(map);
    } else {
      $("map").classList.add("no-tiles");
      map.attributionControl.addAttribution("Không có nền bản đồ / No base map");
    }
    cluster = L.markerClusterGroup({ iconCreateFunction: clusterIcon, showCoverageOnHover: false, maxClusterRadius: 40 });
    map.addLayer(cluster);
    await loadBoundaries();
    for (const id of ["filter-province", "filter-district", "filter-commune"]) {
      $(id).addEventListener("change", () => { refreshAreaSelects(true); render(); });
    }
    $("map-filters").addEventListener("change", (e) => { if (e.target.type === "checkbox") render(); });
    $("map-filters").addEventListener("submit", (e) => e.preventDefault());
    await refresh(true);
    setInterval(() => refresh(false), (config.refresh_s || 15) * 1000);
  }

  IOC.shell({ page: "map", onReady: async (me) => {
    try { await start(me); } catch (error) { IOC.showError($("map-error"), error.message || String(error)); }
  } });
})();
