using System.Globalization;
using System.Text.Json;
using Microsoft.Playwright;

namespace UpgradeConsole.Benchmarks;

/// <summary>
/// Where a Chromium tab's main thread spends its time: a DevTools timeline trace of the actions, summed by event
/// (self time, nested events subtracted) on the renderer's main thread. For finding what to make cheaper, not a goal.
/// </summary>
internal static class RendererTrace
{
    private static readonly string[] Categories = ["devtools.timeline", "disabled-by-default-devtools.timeline", "blink", "v8", "loading"];

    /// <summary>Runs <paramref name="actions"/> under a trace and prints the renderer main thread's busiest events.</summary>
    public static async Task PrintAsync(IBrowser browser, string what, Func<Task> actions, int top = 14)
    {
        // The DevTools protocol's Tracing domain, browser-wide: the events come in batches, then tracingComplete.
        var session = await browser.NewBrowserCDPSessionAsync();
        var collected = new List<JsonElement>();
        var complete = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        session.Event("Tracing.dataCollected").OnEvent += (_, e) =>
        {
            if (e is { } batch)
            {
                lock (collected)
                {
                    collected.AddRange(batch.GetProperty("value").EnumerateArray().Select(v => v.Clone()));
                }
            }
        };
        session.Event("Tracing.tracingComplete").OnEvent += (_, _) => complete.TrySetResult();
        await session.SendAsync("Tracing.start", new() { ["traceConfig"] = new Dictionary<string, object> { ["includedCategories"] = Categories }, ["transferMode"] = "ReportEvents" });
        await actions();
        await session.SendAsync("Tracing.end");
        await complete.Task.WaitAsync(TimeSpan.FromSeconds(60));
        await session.DetachAsync();
        lock (collected)
        {
            Print(what, collected, top);
        }
    }

    private static void Print(string what, List<JsonElement> events, int top)
    {
        var mainThreads = new HashSet<(int Pid, int Tid)>();
        foreach (var e in events)
        {
            if (e.GetProperty("ph").GetString() == "M" && e.GetProperty("name").GetString() == "thread_name"
                && e.GetProperty("args").GetProperty("name").GetString() == "CrRendererMain")
            {
                mainThreads.Add((e.GetProperty("pid").GetInt32(), e.GetProperty("tid").GetInt32()));
            }
        }

        var complete = new List<((int Pid, int Tid) Thread, long Start, long Duration, string Name)>();
        foreach (var e in events)
        {
            var thread = (e.GetProperty("pid").GetInt32(), e.GetProperty("tid").GetInt32());
            if (e.GetProperty("ph").GetString() == "X" && e.TryGetProperty("dur", out var dur) && mainThreads.Contains(thread))
            {
                complete.Add((thread, e.GetProperty("ts").GetInt64(), dur.GetInt64(), e.GetProperty("name").GetString() ?? "?"));
            }
        }

        // Self time: an event's duration less that of the events nested directly in it, on its own thread (a
        // navigation may have two renderers' main threads, the old page's and the new one's).
        complete.Sort((a, b) => a.Thread != b.Thread ? a.Thread.CompareTo(b.Thread) : a.Start != b.Start ? a.Start.CompareTo(b.Start) : b.Duration.CompareTo(a.Duration));
        var self = new Dictionary<string, long>();
        var stack = new Stack<(long End, string Name)>();
        long busy = 0;
        (int, int)? current = null;
        foreach (var (thread, start, duration, name) in complete)
        {
            if (thread != current)
            {
                stack.Clear();
                current = thread;
            }

            while (stack.Count > 0 && stack.Peek().End <= start)
            {
                stack.Pop();
            }

            if (stack.Count == 0)
            {
                busy += duration;
            }
            else
            {
                var parent = stack.Peek().Name;
                self[parent] = self.GetValueOrDefault(parent) - duration;
            }

            self[name] = self.GetValueOrDefault(name) + duration;
            stack.Push((start + duration, name));
        }

        Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"{what}: the tab's main thread busy {busy / 1000.0:0.0} ms; self time by event:"));
        foreach (var (name, micros) in self.OrderByDescending(p => p.Value).Take(top))
        {
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"  {micros / 1000.0,8:0.0} ms  {name}"));
        }
    }
}
