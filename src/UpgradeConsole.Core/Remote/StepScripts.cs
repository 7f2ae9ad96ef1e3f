using System.Globalization;
using System.Text;

namespace UpgradeConsole.Core.Remote;

/// <summary>
/// The small POSIX shell programs the engine sends to a target. Each is fixed text plus values
/// that went through <see cref="ShellWords"/> (or base64), so nothing can break out of its word.
/// </summary>
internal static class StepScripts
{
    public const string AlreadyStarted = "UC:ALREADY-STARTED";
    public const string Started = "UC:STARTED";

    /// <summary>
    /// Runs on the target as the session leader of a new session (setsid): so its process group
    /// is the step's, and cancel or timeout can stop the whole group. Writes the pid first and the
    /// exit code last (temp file + rename), once, whoever finishes first (runner, watchdog, cancel).
    /// </summary>
    private const string Runner = """
        #!/bin/bash
        # UpgradeConsole step runner: bash run <step dir> <timeout seconds, 0 = none> [run-as user]
        dir="$1"; limit="${2:-0}"; runas="${3:-}"
        finish() {
          mkdir -- "$dir/.finished" 2>/dev/null || return 0
          printf '%s\n' "$1" > "$dir/exit.tmp" && mv -f -- "$dir/exit.tmp" "$dir/exit"
        }
        printf '%s\n' "$$" > "$dir/pid.tmp" && mv -f -- "$dir/pid.tmp" "$dir/pid"
        trap 'echo "[upgradeconsole] stop requested"' TERM
        if [ -n "$runas" ]; then
          sudo -n -u "$runas" -H -- bash -s < "$dir/script" &
        else
          bash "$dir/script" < /dev/null &
        fi
        child=$!
        if [ "$limit" -gt 0 ]; then
          (
            trap '' TERM
            sleep "$limit"
            [ -e "$dir/exit" ] && exit 0
            : > "$dir/timed-out"
            echo "[upgradeconsole] the step ran longer than ${limit}s and is being stopped"
            kill -TERM -- "-$$" 2>/dev/null
            sleep 10
            [ -e "$dir/exit" ] && exit 0
            finish 124
            kill -KILL -- "-$$" 2>/dev/null
          ) &
          watchdog=$!
        fi
        while :; do
          wait "$child"; code=$?
          kill -0 "$child" 2>/dev/null || break
        done
        if [ -n "${watchdog:-}" ]; then
          pkill -KILL -P "$watchdog" 2>/dev/null
          kill -KILL "$watchdog" 2>/dev/null
        fi
        [ -e "$dir/timed-out" ] && code=124
        finish "$code"
        """;

    public static string Start(RemoteStep step)
    {
        var payload = new StringBuilder();
        payload.Append("# UpgradeConsole step ").Append(step.Location.StepId).Append('\n');
        foreach (var (name, value) in step.Environment.OrderBy(kv => kv.Key, StringComparer.Ordinal))
        {
            if (!ShellWords.IsVariableName(name))
            {
                throw new ArgumentException($"'{name}' is not a valid environment variable name.", nameof(step));
            }

            payload.Append("export ").Append(name).Append('=').Append(ShellWords.Quote(value)).Append('\n');
        }

        if (step.WorkingDirectory is { } workdir)
        {
            payload.Append("cd -- ").Append(ShellWords.QuotePath(workdir))
                .Append(" || { echo \"[upgradeconsole] cannot enter the working directory\"; exit 126; }\n");
        }

        payload.Append(step.Script);
        if (!step.Script.EndsWith('\n'))
        {
            payload.Append('\n');
        }

        if (step.RunAsUser is { } user && !HostNames.IsValidUser(user))
        {
            throw new ArgumentException($"'{user}' is not a valid user name.", nameof(step));
        }

        var timeout = step.Timeout is { } t ? ((long)Math.Ceiling(t.TotalSeconds)).ToString(CultureInfo.InvariantCulture) : "0";
        return $"""
            set -eu
            dir={step.Location.ShellWord}
            mkdir -p -- "$dir"
            if ! mkdir -- "$dir/.started" 2>/dev/null; then echo '{AlreadyStarted}'; exit 3; fi
            umask 077
            printf '%s' {Base64(payload.ToString())} | base64 -d > "$dir/script"
            printf '%s' {Base64(Runner + "\n")} | base64 -d > "$dir/run"
            : > "$dir/log"
            setsid nohup bash "$dir/run" "$dir" {ShellWords.Quote(timeout)} {ShellWords.Quote(step.RunAsUser ?? "")} < /dev/null >> "$dir/log" 2>&1 &
            i=0
            while [ ! -s "$dir/pid" ] && [ "$i" -lt 200 ]; do sleep 0.05; i=$((i+1)); done
            printf '%s %s\n' '{Started}' "$(cat "$dir/pid" 2>/dev/null || echo 0)"
            """;
    }

    public static string Status(StepLocation location) => $$"""
        dir={{location.ShellWord}}
        if [ ! -d "$dir/.started" ]; then echo 'state=absent'; exit 0; fi
        code=$(cat "$dir/exit" 2>/dev/null || true)
        size=$(stat -c %s -- "$dir/log" 2>/dev/null || echo 0)
        pid=$(cat "$dir/pid" 2>/dev/null || true)
        alive=0
        if [ -n "$pid" ] && [ -r "/proc/$pid/cmdline" ] && tr '\0' '\n' < "/proc/$pid/cmdline" | grep -qxF -- "$dir"; then alive=1; fi
        starting=0
        if [ -z "$pid" ] && [ -n "$(find "$dir/.started" -maxdepth 0 -newermt '-30 seconds' 2>/dev/null)" ]; then starting=1; fi
        cancelled=0; [ -e "$dir/cancelled" ] && cancelled=1
        timedout=0; [ -e "$dir/timed-out" ] && timedout=1
        printf 'state=started\nexit=%s\nsize=%s\npid=%s\nalive=%s\nstarting=%s\ncancelled=%s\ntimedout=%s\n' "$code" "$size" "$pid" "$alive" "$starting" "$cancelled" "$timedout"
        """;

    /// <summary>Streams the log from <paramref name="offset"/>; with <paramref name="follow"/>, until the runner exits.</summary>
    public static string Tail(StepLocation location, long offset, bool follow)
    {
        var from = (offset + 1).ToString(CultureInfo.InvariantCulture);
        return follow
            ? $"""
              dir={location.ShellWord}
              pid=$(cat "$dir/pid" 2>/dev/null || echo 1)
              if [ -e "$dir/exit" ]; then exec tail -c +{from} -- "$dir/log"; fi
              exec tail -c +{from} --pid="$pid" -s 0.2 -f -- "$dir/log"
              """
            : $"""
              dir={location.ShellWord}
              exec tail -c +{from} -- "$dir/log"
              """;
    }

    public static string Cancel(StepLocation location, TimeSpan grace)
    {
        var ticks = Math.Max(1, (int)(grace.TotalSeconds * 10)).ToString(CultureInfo.InvariantCulture);
        return $$"""
            dir={{location.ShellWord}}
            if [ -e "$dir/exit" ]; then echo 'UC:ENDED'; exit 0; fi
            pid=$(cat "$dir/pid" 2>/dev/null || true)
            if [ -z "$pid" ]; then echo 'UC:NOT-RUNNING'; exit 0; fi
            : > "$dir/cancelled"
            pkill -TERM -g "$pid" 2>/dev/null || true
            i=0
            while [ "$i" -lt {{ticks}} ]; do
              if [ -e "$dir/exit" ]; then echo 'UC:STOPPED'; exit 0; fi
              sleep 0.1; i=$((i+1))
            done
            pkill -KILL -g "$pid" 2>/dev/null || true
            if mkdir -- "$dir/.finished" 2>/dev/null; then
              printf '137\n' > "$dir/exit.tmp" && mv -f -- "$dir/exit.tmp" "$dir/exit"
            fi
            echo 'UC:KILLED'
            """;
    }

    private static string Base64(string text) => "'" + Convert.ToBase64String(new UTF8Encoding(false).GetBytes(text)) + "'";
}
