// The statically rendered pages (sign-in, setup, change password, error pages): their menus are <details>
// elements, so they open without a script; this adds what needs one. No inline scripts: the CSP forbids them.
(function () {
  'use strict';

  document.addEventListener('click', function (event) {
    var target = event.target;
    // A theme choice: saved in cookies (js/shell.js), then the page is fetched again so the server renders
    // it in the new colours. A GET of the address without its fragment: never a form posted twice.
    var choice = target.closest && target.closest('[data-uc-theme]');
    if (choice) {
      window.ucShell.setTheme(choice.getAttribute('data-uc-theme'));
      window.location.replace(window.location.pathname + window.location.search);
      return;
    }

    // A click outside an open menu closes it, as the interactive pages' menus do.
    document.querySelectorAll('details.uc-static-menu[open]').forEach(function (menu) {
      if (!menu.contains(target)) {
        menu.removeAttribute('open');
      }
    });
  });

  document.addEventListener('keydown', function (event) {
    if (event.key !== 'Escape') { return; }
    document.querySelectorAll('details.uc-static-menu[open]').forEach(function (menu) {
      menu.removeAttribute('open');
      var summary = menu.querySelector('summary');
      if (summary) { summary.focus(); }
    });
  });
})();
