// Browser code shared by central's pages (/police, /projects): safe DOM helpers, the error texts, and the
// session (sign-in with password + TOTP, the CSRF header, sign-out). Plain JavaScript, no build step, no CDN.
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

  return { $, el, svg, csrfToken, showError, detailOf, messageFor, signIn, signOut, currentUser };
})();
