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
    /// exit code last, once, whoever finishes first (runner, watchdog, cancel): the <c>.finished</c>
    /// claim makes one writer, and a reader takes an exit file still empty for "not yet" (a two-field
    /// line is one write). With the code goes the log's size, read from the offset of the log's own
    /// descriptor (every writer of the step shares it), so an ended step's state needs no process.
    /// A POSIX sh (no bash start per step); the script runs in a bash of its own (so $$, $0 and exit
    /// mean what its author expects), or under sudo.
    /// </summary>
    private const string Runner = """
        #!/bin/sh
        # UpgradeConsole step runner: sh runner <step dir> <timeout seconds, 0 = none> [run-as user]
        __uc_dir="$1"; __uc_limit="${2:-0}"; __uc_runas="${3:-}"
        __uc_finish() {
          set -C
          if ! { true > "$__uc_dir/.finished"; } 2>/dev/null; then set +C; return 0; fi
          set +C
          printf '%s %s\n' "$1" "$2" > "$__uc_dir/exit"
        }
        # What nohup did, without its process: a hang-up never stops the step (inherited by the script).
        trap '' HUP
        printf '%s\n' "$$" > "$__uc_dir/pid"
        trap 'echo "[upgradeconsole] stop requested"' TERM
        if [ -n "$__uc_runas" ]; then
          sudo -n -u "$__uc_runas" -H -- bash -s < "$__uc_dir/script" &
        else
          bash "$__uc_dir/script" < /dev/null &
        fi
        __uc_child=$!
        if [ "$__uc_limit" -gt 0 ]; then
          (
            trap '' TERM
            sleep "$__uc_limit"
            # Ended meanwhile (the runner reaped it): no timeout.
            kill -0 "$__uc_child" 2>/dev/null || exit 0
            [ -e "$__uc_dir/exit" ] && exit 0
            : > "$__uc_dir/timed-out"
            echo "[upgradeconsole] the step ran longer than ${__uc_limit}s and is being stopped"
            kill -TERM "-$$" 2>/dev/null
            sleep 10
            [ -e "$__uc_dir/exit" ] && exit 0
            __uc_finish 124 ""
            kill -KILL "-$$" 2>/dev/null
          ) 2>/dev/null &
          __uc_watchdog=$!
          # Not a job a shell reports on: killing it below must not print "Killed" into the log (bash; sh has no disown).
          disown "$__uc_watchdog" 2>/dev/null || true
        fi
        while :; do
          wait "$__uc_child"; __uc_code=$?
          kill -0 "$__uc_child" 2>/dev/null || break
        done
        if [ -n "${__uc_watchdog:-}" ]; then
          # Freeze the watchdog first, so it cannot start finishing (or kill us) while we end it.
          kill -STOP "$__uc_watchdog" 2>/dev/null
          pkill -KILL -P "$__uc_watchdog" 2>/dev/null
          kill -KILL "$__uc_watchdog" 2>/dev/null
        fi
        [ -e "$__uc_dir/timed-out" ] && __uc_code=124
        # The log's size: the offset of stdout, the log opened for appending and shared by every writer of the step.
        __uc_size=
        if [ -r "/proc/$$/fdinfo/1" ]; then
          while read -r __uc_k __uc_v; do [ "$__uc_k" = "pos:" ] && { __uc_size=$__uc_v; break; }; done < "/proc/$$/fdinfo/1"
        fi
        __uc_finish "$__uc_code" "$__uc_size"
        # The watchdog may have claimed the finish just before it was stopped: it is gone now, so write the code.
        [ -s "$__uc_dir/exit" ] || printf '%s %s\n' "$__uc_code" "$__uc_size" > "$__uc_dir/exit"
        """;

    /// <summary>The runner's file, as the step directory holds it; and as a shell word, for the start script.</summary>
    internal static readonly string RunnerFile = Runner + "\n";

    private static readonly string QuotedRunnerFile = ShellWords.Quote(RunnerFile);

    /// <summary>The write bits of the three step directories, in one process (a step's fixed cost is mostly process starts).</summary>
    private const string WriteBitsCheck = """
        __uc_open=$(find "$runs" "${dir%/*}" "$dir" -maxdepth 0 -perm /022 -print -quit 2>/dev/null)
        [ -z "$__uc_open" ] || __uc_refuse "$__uc_open"
        """;

    /// <summary>True when <c>$__uc_pid</c> is alive and is this step's runner (its command line names <c>$dir</c>; a recycled pid does not).</summary>
    private const string RunnerAlive = """[ -n "$__uc_pid" ] && [ -r "/proc/$__uc_pid/cmdline" ] && tr '\0' '\n' < "/proc/$__uc_pid/cmdline" | grep -qxF -- "$dir" """;

    /// <summary>
    /// Prints the step's state on stderr as <c>UC:STATE key=value…</c> (stdout carries only log bytes).
    /// An ended step needs only its exit code and log size; the liveness checks run only otherwise.
    /// </summary>
    private const string PrintState = $$"""
        __uc_code=; __uc_size=; [ -e "$dir/exit" ] && read -r __uc_code __uc_size < "$dir/exit"
        { [ -n "$__uc_code" ] && [ -n "$__uc_size" ]; } || __uc_size=$(stat -c %s -- "$dir/log" 2>/dev/null); [ -n "$__uc_size" ] || __uc_size=0
        __uc_cancelled=0; [ -e "$dir/cancelled" ] && __uc_cancelled=1
        __uc_timedout=0; [ -e "$dir/timed-out" ] && __uc_timedout=1
        if [ -n "$__uc_code" ]; then
          echo "UC:STATE started=1 exit=$__uc_code size=$__uc_size pid= alive=0 starting=0 cancelled=$__uc_cancelled timedout=$__uc_timedout" >&2
        else
        __uc_pid=; [ -e "$dir/pid" ] && read -r __uc_pid < "$dir/pid"
        __uc_alive=0
        if {{RunnerAlive}}; then __uc_alive=1; fi
        __uc_starting=0
        if [ -z "$__uc_pid" ] && [ -n "$(find "$dir/.started" -maxdepth 0 -newermt '-30 seconds' 2>/dev/null)" ]; then __uc_starting=1; fi
        echo "UC:STATE started=1 exit=$__uc_code size=$__uc_size pid=$__uc_pid alive=$__uc_alive starting=$__uc_starting cancelled=$__uc_cancelled timedout=$__uc_timedout" >&2
        fi
        """;

    /// <summary>
    /// Starts the step and, in the same session, streams its log to stdout until it ends, then
    /// prints its state on stderr: one SSH round trip for a whole short step.
    /// </summary>
    public static string StartAndFollow(RemoteStep step, bool parentsChecked = false) => Start(step, follow: true, parentsChecked);

    /// <param name="step">The step to start.</param>
    /// <param name="follow">Also stream its log in the same session until it ends.</param>
    /// <param name="parentsChecked">
    /// The runs and run directories were already found private by an earlier start over the same connection. Then
    /// only their owner is checked again (a builtin test): a directory of ours with no group or other write bit can
    /// only be changed by us or root, a directory swapped in by someone else fails the owner test, and the step's
    /// own directory is new, made under umask 077 inside them. The write-bit check (a process) is skipped.
    /// </param>
    public static string Start(RemoteStep step, bool follow = false, bool parentsChecked = false)
    {
        var payload = Payload(step);
        var timeout = TimeoutSeconds(step);
        var script = new StringBuilder();
        script.Append("umask 077\n");
        script.Append("runs=").Append(ShellWords.QuotePath(step.Location.RunsDirectory)).Append('\n');
        script.Append("dir=").Append(step.Location.ShellWord).Append('\n');
        // Nothing is run from a directory another user could write to or own: a runner or script planted
        // there would run as the SSH user. Every directory of the step's path is created owner-only and
        // checked (ours, no group or other write bit) before anything is written or started; the runner
        // travels with each step into the step's own directory instead of being shared and reused.
        script.Append(CultureInfo.InvariantCulture, $$"""
            __uc_refuse() { echo "[upgradeconsole] refusing to start: $1 is not a directory of $(id -un) closed to other users (owner-only writes)" >&2; exit 5; }
            mkdir -p -- "$dir" || exit 4
            for __uc_d in "$runs" "${dir%/*}" "$dir"; do
              { [ -d "$__uc_d" ] && [ ! -L "$__uc_d" ] && [ -O "$__uc_d" ]; } || __uc_refuse "$__uc_d"
            done
            {{(parentsChecked ? "" : WriteBitsCheck)}}
            set -C
            if ! { true > "$dir/.started"; } 2>/dev/null; then echo '{{AlreadyStarted}}' >&2; exit 3; fi
            printf '%s' {{QuotedRunnerFile}} > "$dir/runner" || exit 4
            printf '%s' {{ShellWords.Quote(payload)}} > "$dir/script" || exit 4
            : > "$dir/log" || exit 4
            set +C
            setsid -w sh "$dir/runner" "$dir" {{ShellWords.Quote(timeout)}} {{ShellWords.Quote(step.RunAsUser ?? "")}} < /dev/null >> "$dir/log" 2>&1 &
            __uc_runner=$!
            echo "{{Started}} $__uc_runner" >&2

            """);
        if (follow)
        {
            // The runner is this shell's child, so tail --pid sees its end at its next poll: every 2 ms, because a
            // short step's whole cost is a few process starts, and a poll is one kill(2) on the target.
            script.Append("tail -c +1 --pid=\"$__uc_runner\" -s 0.002 -f -- \"$dir/log\"\n");
            script.Append(PrintState);
        }

        return script.ToString();
    }

    /// <summary>The step's script file: its environment, working directory and script (what the runner's bash runs).</summary>
    internal static string Payload(RemoteStep step)
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

        return payload.ToString();
    }

    /// <summary>The runner's time limit argument: whole seconds, 0 for none.</summary>
    internal static string TimeoutSeconds(RemoteStep step) =>
        step.Timeout is { } t ? ((long)Math.Ceiling(t.TotalSeconds)).ToString(CultureInfo.InvariantCulture) : "0";

    public static string Status(StepLocation location) => $"""
        dir={location.ShellWord}
        if [ ! -e "$dir/.started" ]; then echo 'UC:STATE started=0' >&2; exit 0; fi
        {PrintState}
        """;

    /// <summary>
    /// Streams the log from <paramref name="offset"/> on stdout (until the runner ends, if it runs)
    /// and then prints the step's state on stderr.
    /// </summary>
    public static string Follow(StepLocation location, long offset)
    {
        var from = (offset + 1).ToString(CultureInfo.InvariantCulture);
        return $$"""
            dir={{location.ShellWord}}
            if [ ! -e "$dir/.started" ]; then echo 'UC:STATE started=0' >&2; exit 0; fi
            # A step started a moment ago may not have written its pid yet: wait for it (bounded).
            __uc_i=0
            while [ ! -e "$dir/pid" ] && [ ! -e "$dir/exit" ] && [ "$__uc_i" -lt 100 ]; do sleep 0.1; __uc_i=$((__uc_i + 1)); done
            __uc_pid=; [ -e "$dir/pid" ] && read -r __uc_pid < "$dir/pid"
            # Follow only a runner that is alive and is this step's (a recycled pid is someone else's process).
            if [ ! -e "$dir/exit" ] && {{RunnerAlive}}; then
              tail -c +{{from}} --pid="$__uc_pid" -s 0.05 -f -- "$dir/log"
            else
              tail -c +{{from}} -- "$dir/log"
            fi
            {{PrintState}}
            """;
    }

    public static string Cancel(StepLocation location, TimeSpan grace)
    {
        var ticks = Math.Max(1, (int)(grace.TotalSeconds * 10)).ToString(CultureInfo.InvariantCulture);
        return $$"""
            dir={{location.ShellWord}}
            if [ -e "$dir/exit" ]; then echo 'UC:ENDED'; exit 0; fi
            pid=; [ -e "$dir/pid" ] && read -r pid < "$dir/pid"
            if [ -z "$pid" ]; then echo 'UC:NOT-RUNNING'; exit 0; fi
            : > "$dir/cancelled"
            pkill -TERM -g "$pid" 2>/dev/null || true
            i=0
            while [ "$i" -lt {{ticks}} ]; do
              if [ -e "$dir/exit" ]; then echo 'UC:STOPPED'; exit 0; fi
              sleep 0.1; i=$((i+1))
            done
            pkill -KILL -g "$pid" 2>/dev/null || true
            set -C
            if { true > "$dir/.finished"; } 2>/dev/null; then
              set +C
              printf '137\n' > "$dir/exit.tmp" && mv -f -- "$dir/exit.tmp" "$dir/exit"
            fi
            echo 'UC:KILLED'
            """;
    }

}
