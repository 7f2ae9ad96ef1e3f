// Dashboard-wide behaviour. No inline scripts anywhere: the Content-Security-Policy forbids them.
(function () {
  'use strict';

  // Every htmx request carries the antiforgery token the server rendered into <head>.
  document.body.addEventListener('htmx:configRequest', function (event) {
    var meta = document.querySelector('meta[name="antiforgery-token"]');
    if (meta && meta.content) {
      event.detail.headers['RequestVerificationToken'] = meta.content;
    }
  });

  // An htmx request that failed shows its reason instead of doing nothing.
  document.body.addEventListener('htmx:responseError', function (event) {
    var status = event.detail.xhr.status;
    var text = status === 403 ? 'Your role does not allow this.' :
      status === 429 ? 'Too many requests; wait a moment.' :
      'The request failed (' + status + ').';
    showToast(text);
  });

  function showToast(text) {
    var host = document.getElementById('uc-toasts');
    if (!host) {
      host = document.createElement('div');
      host.id = 'uc-toasts';
      host.className = 'toast-container position-fixed bottom-0 end-0 p-3';
      document.body.appendChild(host);
    }
    var toast = document.createElement('div');
    toast.className = 'toast text-bg-danger border-0';
    toast.setAttribute('role', 'alert');
    var body = document.createElement('div');
    body.className = 'toast-body';
    body.textContent = text;
    toast.appendChild(body);
    host.appendChild(toast);
    bootstrap.Toast.getOrCreateInstance(toast, { delay: 6000 }).show();
  }

  // Forms that change something big ask first (data-confirm="…"): no inline handlers under the CSP.
  document.addEventListener('submit', function (event) {
    var message = event.target.getAttribute && event.target.getAttribute('data-confirm');
    if (message && !window.confirm(message)) {
      event.preventDefault();
    }
  });

  var toggle = document.getElementById('uc-theme-toggle');
  if (toggle) {
    toggle.addEventListener('click', function () {
      var next = document.documentElement.getAttribute('data-bs-theme') === 'dark' ? 'light' : 'dark';
      document.documentElement.setAttribute('data-bs-theme', next);
      document.cookie = 'uc-theme=' + next + '; path=/; max-age=31536000; samesite=strict';
    });
  }
})();
