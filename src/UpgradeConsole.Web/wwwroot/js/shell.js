// Called by the interactive layout (MainLayout.razor) through JS interop. No inline scripts: the CSP forbids them.
window.ucShell = {
  // Saves the theme choice (light, dark or system) for the next requests and answers whether it is dark now.
  setTheme: function (choice) {
    var systemDark = window.matchMedia('(prefers-color-scheme: dark)').matches;
    var dark = choice === 'dark' || (choice === 'system' && systemDark);
    document.cookie = 'uc-theme=' + choice + '; path=/; max-age=31536000; samesite=strict';
    document.cookie = 'uc-system-theme=' + (systemDark ? 'dark' : 'light') + '; path=/; max-age=31536000; samesite=strict';
    document.documentElement.setAttribute('data-theme', dark ? 'dark' : 'light');
    return dark;
  }
};
