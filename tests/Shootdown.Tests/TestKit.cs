using Shootdown.Kernel.Sched;

namespace Shootdown.Tests;

/// <summary>Driving processes (kernel paths written as iterators) from tests.</summary>
internal static class TestKit
{
    /// <summary>Runs a process to its end (null: nothing to run); fails if it takes more than <paramref name="maxSteps"/> steps.</summary>
    public static int RunToEnd(IEnumerable<Yield>? process, int maxSteps = 100_000)
    {
        int n = 0;
        if (process is null)
        {
            return 0;
        }
        using var runner = new ProcessRunner(process); // with the processes it calls (Yield.Call)
        while (runner.MoveNext())
        {
            Assert.True(++n < maxSteps, "the process did not end");
        }
        return n;
    }

    /// <summary>A simulation of <paramref name="cfg"/> whose first zone's inactive file list holds <paramref name="pages"/> clean, unmapped pages of one file, in file order.</summary>
    public static Sim WithInactivePages(RunConfig cfg, int pages)
    {
        var sim = new Sim(cfg);
        CachePages(sim, sim.CreateFile("cache", pages), pages);
        return sim;
    }

    /// <summary>
    /// Puts clean, unmapped pages at indices 0..<paramref name="pages"/>-1 of <paramref name="file"/>
    /// into the page cache and at the head of the first zone's inactive list, in file order (set up
    /// directly, not through the fault path); returns their frames.
    /// </summary>
    public static int[] CachePages(Sim sim, Kernel.Mm.AddressSpace file, int pages)
    {
        Kernel.Mm.Zone z = sim.Memory.Zones[0];
        var frames = new int[pages];
        for (int i = 0; i < pages; i++)
        {
            int f = frames[i] = z.AllocBootPage();
            sim.Memory.Pages[f].Flags = Kernel.Mm.PageFlags.Uptodate;
            sim.Memory.Pages[f].Mapping = file.Id;
            sim.Memory.Pages[f].Index = i;
            file.PageCache.Set(i, (uint)(f + 1));
            sim.Memory.LruAddHead(z, f, active: false);
        }
        return frames;
    }

    /// <summary>Makes CPU <paramref name="cpu"/> run its user task in a step that has not ended: an IPI waits for its interrupts and delays its next step.</summary>
    public static void Busy(Sim sim, int cpu)
    {
        sim.Cpus[cpu].Current = sim.UserTasks[cpu];
        sim.Cpus[cpu].StepEnd = long.MaxValue / 2;
    }

    private static int _tempDirs;

    /// <summary>
    /// One directory per test process under the system's temporary directory, removed when the
    /// process exits, so that runs of the suite leave nothing behind.
    /// </summary>
    private static readonly Lazy<string> TempRoot = new(() =>
    {
        string root = Directory.CreateTempSubdirectory("shootdown-tests-").FullName;
        AppDomain.CurrentDomain.ProcessExit += (_, _) =>
        {
            try
            {
                Directory.Delete(root, recursive: true);
            }
            catch (IOException)
            {
                // a file still open at exit: the system's temporary-file cleaning takes the rest
            }
            catch (UnauthorizedAccessException)
            {
            }
        };
        return root;
    });

    /// <summary>A new empty temporary directory (inside this test process's own, removed at exit).</summary>
    public static string TempDir()
    {
        string dir = Path.Combine(TempRoot.Value, Interlocked.Increment(ref _tempDirs).ToString(System.Globalization.CultureInfo.InvariantCulture));
        Directory.CreateDirectory(dir);
        return dir;
    }

    /// <summary>Writes <paramref name="text"/> to a file named <paramref name="name"/> in a new temporary directory.</summary>
    public static string TempFile(string name, string text)
    {
        string path = Path.Combine(TempDir(), name);
        File.WriteAllText(path, text);
        return path;
    }

    /// <summary>A run's JSON without the host's wall-time fields (the only ones that differ between equal runs).</summary>
    public static string WithoutWallTime(string json) =>
        System.Text.RegularExpressions.Regex.Replace(json, "\"(wall_s|sim_pages_per_wall_s)\": [^,\n]*", "");

    /// <summary>Runs every pending engine event (e.g. I/O completions) of a simulation that is not running.</summary>
    public static void DrainEvents(Sim sim) => sim.Engine.Run(() => true);

    /// <summary>Advances a process by one step; false when it has ended.</summary>
    public static bool Step(IEnumerator<Yield> process) => process.MoveNext();

    /// <summary>__alloc_pages_nodemask's fast path for the step's task on its CPU's node: true if it got every page without the slow path.</summary>
    public static bool AllocFast(Sim sim, Exec ex, int need, int[] dest) =>
        sim.PageAlloc.AllocPages(ex, ex.Task, ex.Cpu.Node, need, dest) is null;

    /// <summary>An Exec for a step of CPU <paramref name="cpu"/>'s first user task (or <paramref name="task"/>) starting at <paramref name="t"/>.</summary>
    public static Exec ExecOn(Sim sim, int cpu, long t = 0, SimTask? task = null)
    {
        var ex = new Exec(sim.Costs, sim.Lines);
        // A fresh step on that CPU: no interrupts-off intervals yet (the scheduler's Cpu.BeginStep
        // does this for the steps of a run; tests that set up receivers' intervals by hand rely on
        // the sender's step starting clean).
        sim.Cpus[cpu].IrqOffCount = 0;
        ex.Reset(sim.Cpus[cpu], task ?? sim.UserTasks[cpu], t, t);
        return ex;
    }
}
