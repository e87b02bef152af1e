// The overview (/): open alerts, cameras and stations by state, vehicle totals of the last 24 h. Every number
// comes from the same APIs as the other pages (scoped to the user's area); a section whose API refuses the
// user's role stays hidden. Values go into the page as text only.
"use strict";

(() => {
  const { $, el, api, fmtNumber, fmtTime, showError } = window.IOC;


  const ALERTS_PAGE = 200; // alerts counted per status; the API pages beyond (next_cursor)

  function cell(text, cls) { return el("td", cls ? { class: cls } : {}, text); }

  async function section(id, load) {
    try {
      await load();
      $(id).hidden = false;
    } catch (error) {
      if (error.status === 403) return; // not this role's data: the section stays hidden
      showError($("overview-error"), error.message);
    }
  }

  async function loadAlerts() {
    const [open, acknowledged] = await Promise.all([
      api(`/api/v1/alerts?status=open&limit=${ALERTS_PAGE}`), api(`/api/v1/alerts?status=acknowledged&limit=${ALERTS_PAGE}`),
    ]);
    const items = [...open.items, ...acknowledged.items];
    // A status with a next page has more alerts than were counted: every count is then "at least" (N+), and
    // the note says so, rather than a total that silently stops at the page size.
    const more = open.next_cursor || acknowledged.next_cursor ? "+" : "";
    $("alerts-open").textContent = `${fmtNumber(items.length)}${more}`;
    $("alerts-capped").hidden = !more;
    const bySeverity = {};
    for (const alert of items) bySeverity[alert.severity] = (bySeverity[alert.severity] || 0) + 1;
    $("alerts-severity").replaceChildren(...Object.entries(window.IOC.SEVERITY).map(([key, { vi, en, chip }]) => {
      const item = el("li");
      item.append(el("span", { class: `chip ${chip}` }, `${vi} / ${en}: ${fmtNumber(bySeverity[key] || 0)}${more}`));
      return item;
    }));
    items.sort((a, b) => (a.opened_at < b.opened_at ? 1 : -1));
    $("alerts-latest").replaceChildren(...items.slice(0, 5).map((alert) => {
      const item = el("li", {}, `${fmtTime(alert.opened_at)} – ${alert.message_vi}`);
      item.append(el("span", { class: "en" }, ` / ${alert.message_en}`));
      return item;
    }));
  }

  async function loadSites() {
    const sites = await api("/api/v1/map/sites");
    const rows = Object.entries(window.IOC.SOURCE_STATES).map(([state, { vi, en }]) => {
      const row = el("tr");
      const camera = sites.filter((s) => s.kind === "camera" && s.state === state).length;
      const sensor = sites.filter((s) => s.kind === "sensor" && s.state === state).length;
      const name = el("th", { scope: "row" }, vi);
      name.append(el("span", { class: "en" }, ` / ${en}`));
      row.append(name, cell(fmtNumber(camera), "num"), cell(fmtNumber(sensor), "num"));
      return row;
    });
    $("sites-body").replaceChildren(...rows);
  }

  async function loadTraffic() {
    const end = new Date();
    const start = new Date(end.getTime() - 24 * 3600 * 1000);
    const query = new URLSearchParams({ start: start.toISOString(), end: end.toISOString() });
    const totals = await api(`/api/v1/counts/totals?${query}`);
    const byClass = {};
    for (const row of totals) {
      if (!row.vehicle_class) continue;
      const entry = byClass[row.vehicle_class] || (byClass[row.vehicle_class] = { in: 0, out: 0 });
      entry[row.direction === "out" ? "out" : "in"] += Number(row.count) || 0;
    }
    const classes = Object.keys(byClass).sort();
    $("traffic-body").replaceChildren(...(classes.length ? classes.map((name) => {
      const row = el("tr");
      row.append(el("th", { scope: "row" }, window.IOC.vehicleClass(name)),
        cell(fmtNumber(byClass[name].in), "num"), cell(fmtNumber(byClass[name].out), "num"));
      return row;
    }) : [(() => {
      const row = el("tr");
      row.append(el("td", { colspan: "3" }, "Chưa có lượt xe nào trong 24 giờ qua. / No vehicles counted in the last 24 h."));
      return row;
    })()]));
  }

  window.IOC.shell({
    page: "summary",
    onReady: async () => {
      await Promise.all([
        section("alerts-card", loadAlerts), section("sites-card", loadSites), section("traffic-card", loadTraffic),
      ]);
      document.body.dataset.ready = "1";
    },
  });
})();
