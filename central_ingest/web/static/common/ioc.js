// Browser code shared by central's pages: safe DOM helpers, the error texts, the session (sign-in with
// password + TOTP, the CSRF header, sign-out), the JSON API client and the page shell (header, navigation,
// sign-in form) of the operator pages. Plain JavaScript, no build step, no CDN.
// Every value from the server goes into the page as text (textContent / SVG text), never as HTML.
"use strict";

window.IOC = (() => {
  const SVG_NS = "http://www.w3.org/2000/svg";
  let csrfFromLogin = null;

  const $ = (id) => document.getElementById(id);

  function el(tag, attrs = {}, text = null) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs)) node.setAttribute(key, value);
    if (text !== null) node.textContent = text;
    return node;
  }

  function svg(tag, attrs = {}, text = null) {
    const node = document.createElementNS(SVG_NS, tag);
    for (const [key, value] of Object.entries(attrs)) node.setAttribute(key, String(value));
    if (text !== null) node.textContent = text;
    return node;
  }

  function csrfToken() {
    // The session's double-submit token: the ioc_csrf cookie (readable by this page, unlike the session
    // cookie), so a reload keeps working; the login answer's copy covers a browser that hides it.
    const cookie = document.cookie.split("; ").find((c) => c.startsWith("ioc_csrf="));
    return cookie ? decodeURIComponent(cookie.slice("ioc_csrf=".length)) : csrfFromLogin || "";
  }

  function showError(node, message) {
    node.textContent = message;
    node.hidden = !message;
  }

  async function detailOf(response) {
    try {
      const body = await response.json();
      if (typeof body.detail === "string") return body.detail;
      if (Array.isArray(body.detail)) {
        return body.detail.map((d) => `${(d.loc || []).slice(1).join(".")}: ${d.msg}`).join("; ");
      }
    } catch (_) { /* not JSON */ }
    return response.statusText;
  }

  const KNOWN_STATUS = {
    401: "Phiên đăng nhập đã hết hạn hoặc chưa đăng nhập. Vui lòng đăng nhập lại. / Session expired or not logged in.",
    403: "Tài khoản này không có quyền thực hiện việc này. / This account may not do this.",
    413: "Dữ liệu gửi lên quá lớn. / The upload is too large.",
    422: "Yêu cầu chưa hợp lệ / Invalid request",
    500: "Lỗi máy chủ. / Server error.",
    503: "Máy chủ tạm thời không sẵn sàng, thử lại sau. / Service unavailable, try again later.",
  };

  function messageFor(status, detail, overrides = {}) {
    // The page's own wording for a status wins over the shared one (e.g. police: "police role needed").
    const base = overrides[status] || KNOWN_STATUS[status] || `Lỗi ${status} / Error ${status}`;
    return detail && status !== 401 ? `${base}: ${detail}` : base;
  }

  async function signIn(username, password, totp, overrides = {}) {
    // { ok: true, username, roles } or { ok: false, message }.
    const body = { username, password };
    if (totp) body.totp = totp;
    const response = await fetch("/api/v1/auth/login", {
      method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body),
      credentials: "same-origin",
    });
    if (!response.ok) {
      const detail = await detailOf(response);
      return {
        ok: false,
        message: response.status === 401
          ? `Sai tên đăng nhập, mật khẩu hoặc mã OTP. / Wrong username, password or code. (${detail})`
          : messageFor(response.status, detail, overrides),
      };
    }
    const answer = await response.json();
    csrfFromLogin = answer.csrf_token || null;
    return { ok: true, username, roles: answer.roles || [] };
  }

  async function signOut() {
    await fetch("/api/v1/auth/logout", {
      method: "POST", credentials: "same-origin", headers: { "X-CSRF-Token": csrfToken() },
    });
    csrfFromLogin = null;
  }

  async function currentUser() {
    // The signed-in user ({ username, roles }) of this browser's session cookie, or null.
    const response = await fetch("/api/v1/auth/me", { credentials: "same-origin" });
    return response.ok ? response.json() : null;
  }

  class ApiError extends Error {
    // A failed API call: .status (0 when the network failed) and a bilingual .message for the page.
    constructor(status, message) {
      super(message);
      this.name = "ApiError";
      this.status = status;
    }
  }

  let onUnauthorized = null;

  async function api(path, options = {}) {
    // fetch with this session: same-origin cookies, the CSRF header on unsafe methods, JSON in and out.
    // options.json: a value sent as the JSON body; options.raw: return the Response itself (CSV, images).
    const method = (options.method || (options.json !== undefined ? "POST" : "GET")).toUpperCase();
    const headers = Object.assign({}, options.headers || {});
    let body = options.body;
    if (options.json !== undefined) {
      headers["Content-Type"] = "application/json";
      body = JSON.stringify(options.json);
    }
    if (!["GET", "HEAD", "OPTIONS"].includes(method)) headers["X-CSRF-Token"] = csrfToken();
    let response;
    try {
      response = await fetch(path, { method, headers, body, credentials: "same-origin", signal: options.signal });
    } catch (error) {
      if (error && error.name === "AbortError") throw error;
      throw new ApiError(0, "Không kết nối được máy chủ. / Cannot reach the server.");
    }
    if (!response.ok) {
      const detail = await detailOf(response);
      if (response.status === 401 && onUnauthorized) onUnauthorized();
      throw new ApiError(response.status, messageFor(response.status, detail, options.statusMessages || {}));
    }
    if (options.raw) return response;
    if (response.status === 204) return null;
    return response.json();
  }

  const TIME_ZONE = "Asia/Ho_Chi_Minh";
  const timeFormat = new Intl.DateTimeFormat("vi-VN", {
    timeZone: TIME_ZONE, day: "2-digit", month: "2-digit", year: "numeric",
    hour: "2-digit", minute: "2-digit", second: "2-digit", hour12: false,
  });

  function fmtTime(iso) {
    // dd/mm/yyyy HH:MM:SS in Vietnam's time, "—" for no value.
    if (!iso) return "—";
    const date = iso instanceof Date ? iso : new Date(iso);
    if (Number.isNaN(date.getTime())) return "—";
    const parts = Object.fromEntries(timeFormat.formatToParts(date).map((p) => [p.type, p.value]));
    return `${parts.day}/${parts.month}/${parts.year} ${parts.hour}:${parts.minute}:${parts.second}`;
  }

  function fmtNumber(value, digits = 0) {
    if (value === null || value === undefined || Number.isNaN(Number(value))) return "—";
    return Number(value).toLocaleString("vi-VN", { minimumFractionDigits: digits, maximumFractionDigits: digits });
  }

  // The operator pages, their Vietnamese / English names and the roles that may open them (the API checks
  // every request; the navigation only hides what the user could not use).
  const ALL_ROLES = ["operator", "police", "project_unit", "technician", "admin", "auditor"];
  const PAGES = [
    { key: "summary", href: "/", vi: "Tổng quan", en: "Overview", roles: ALL_ROLES },
    { key: "map", href: "/map", vi: "Bản đồ", en: "Map", roles: ALL_ROLES },
    { key: "live", href: "/live", vi: "Xem trực tiếp", en: "Live view", roles: ["operator", "technician", "project_unit", "admin"] },
    { key: "alerts", href: "/alerts", vi: "Cảnh báo", en: "Alerts", roles: ["operator", "technician", "police", "project_unit", "admin"] },
    { key: "traffic", href: "/traffic", vi: "Giao thông", en: "Traffic", roles: ["operator", "police", "technician", "admin"] },
    { key: "sensors", href: "/sensors", vi: "Cảm biến", en: "Sensors", roles: ["operator", "technician", "admin"] },
    { key: "health", href: "/health", vi: "Tình trạng thiết bị", en: "Agent health", roles: ["operator", "technician", "admin"] },
    { key: "police", href: "/police", vi: "Tra cứu biển số", en: "Plate search", roles: ["police"] },
    { key: "projects", href: "/projects", vi: "Dự án", en: "Projects", roles: ["operator", "project_unit", "admin"] },
  ];

  function bilingual(tag, vi, en, attrs = {}) {
    const node = el(tag, attrs, vi);
    node.append(" ", el("span", { class: "en" }, `/ ${en}`));
    return node;
  }

  function renderHeader(header, current, me) {
    header.replaceChildren();
    const page = PAGES.find((p) => p.key === current);
    const top = el("div", { class: "ioc-top" });
    top.append(el("span", { class: "ioc-brand" }, "IOC"));
    if (page) top.append(bilingual("h1", page.vi, page.en));
    if (me) {
      const who = el("div", { class: "ioc-who" });
      const areas = me.areas && me.areas.length ? me.areas.join("; ") : "toàn tỉnh / whole province";
      who.append(el("span", { id: "ioc-who-name" }, `${me.display_name || me.username}`),
        el("span", { class: "ioc-who-area", title: "Khu vực / Area" }, areas));
      const out = bilingual("button", "Đăng xuất", "Sign out", { type: "button", id: "ioc-sign-out", class: "secondary" });
      out.addEventListener("click", async () => { await signOut(); window.location.reload(); });
      who.append(out);
      top.append(who);
    }
    header.append(top);
    if (!me) return;
    const roles = new Set(me.roles || []);
    const nav = el("nav", { "aria-label": "Trang / Pages", class: "ioc-nav" });
    const list = el("ul");
    for (const p of PAGES) {
      if (!p.roles.some((r) => roles.has(r))) continue;
      const link = el("a", { href: p.href }, p.vi);
      link.append(el("span", { class: "en" }, ` / ${p.en}`));
      if (p.key === current) link.setAttribute("aria-current", "page");
      const item = el("li");
      item.append(link);
      list.append(item);
    }
    nav.append(list);
    header.append(nav);
  }

  function signInForm(onSignedIn) {
    const section = el("section", { id: "ioc-login", class: "ioc-login", "aria-labelledby": "ioc-login-title" });
    section.append(bilingual("h2", "Đăng nhập", "Sign in", { id: "ioc-login-title" }));
    const form = el("form", { id: "ioc-login-form", autocomplete: "off" });
    const field = (id, vi, en, attrs) => {
      const label = el("label", { for: id }, vi);
      label.append(el("span", { class: "en" }, ` / ${en}`));
      const input = el("input", Object.assign({ id, name: id }, attrs));
      const row = el("div", { class: "ioc-field" });
      row.append(label, input);
      return row;
    };
    form.append(
      field("ioc-login-username", "Tên đăng nhập", "Username", { required: "", autocomplete: "username" }),
      field("ioc-login-password", "Mật khẩu", "Password", { type: "password", required: "", autocomplete: "current-password" }),
      field("ioc-login-totp", "Mã xác thực 6 số (quản trị, cảnh sát)", "6-digit authenticator code (admin, police)",
        { inputmode: "numeric", pattern: "[0-9]{6}", maxlength: "6", autocomplete: "one-time-code" }),
    );
    const button = bilingual("button", "Đăng nhập", "Sign in", { type: "submit", id: "ioc-login-button" });
    const error = el("p", { id: "ioc-login-error", class: "error", role: "alert", hidden: "" });
    form.append(button, error);
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      button.disabled = true;
      const result = await signIn(
        $("ioc-login-username").value.trim(), $("ioc-login-password").value, $("ioc-login-totp").value.trim());
      button.disabled = false;
      $("ioc-login-password").value = "";
      $("ioc-login-totp").value = "";
      if (!result.ok) { showError(error, result.message); return; }
      showError(error, "");
      await onSignedIn();
    });
    section.append(form);
    return section;
  }

  function shell({ page, onReady }) {
    // Header + navigation for ``page``, a sign-in form while there is no session, then #app shown and
    // onReady(me) called once (me: {username, display_name, roles, areas}).
    let started = false;
    const start = async () => {
      const header = $("ioc-header");
      const app = $("app");
      const me = await currentUser();
      const old = $("ioc-login");
      if (old) old.remove();
      renderHeader(header, page, me);
      if (!me) {
        app.hidden = true;
        const form = signInForm(start);
        app.before(form);
        $("ioc-login-username").focus();
        return;
      }
      app.hidden = false;
      if (!started) {
        started = true;
        await onReady(me);
      }
    };
    onUnauthorized = () => { if (started) window.location.reload(); };
    if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
    else start();
  }

  return {
    $, el, svg, csrfToken, showError, detailOf, messageFor, signIn, signOut, currentUser,
    ApiError, api, fmtTime, fmtNumber, bilingual, shell, PAGES,
  };
})();
