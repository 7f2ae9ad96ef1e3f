// Runs in <head>, before the page paints: applies the chosen theme (uc-theme: light, dark or system) and
// notes the system's scheme in a cookie, so the server renders the right colours on the next request.
(function () {
  var match = document.cookie.match(/(?:^|; )uc-theme=(light|dark|system)/);
  var systemDark = window.matchMedia('(prefers-color-scheme: dark)').matches;
  var choice = match ? match[1] : 'system';
  var dark = choice === 'dark' || (choice === 'system' && systemDark);
  document.documentElement.setAttribute('data-theme', dark ? 'dark' : 'light');
  document.cookie = 'uc-system-theme=' + (systemDark ? 'dark' : 'light') + '; path=/; max-age=31536000; samesite=strict';
})();
