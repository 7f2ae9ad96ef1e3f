// Runs in <head>, before the page paints: applies the saved theme, or the system's when none is saved.
(function () {
  var match = document.cookie.match(/(?:^|; )uc-theme=(light|dark)/);
  var theme = match ? match[1] : (window.matchMedia('(prefers-color-scheme: dark)').matches ? 'dark' : 'light');
  document.documentElement.setAttribute('data-bs-theme', theme);
})();
