using Shootdown.Hardware;

namespace Shootdown.Workloads;

/// <summary>A workload creates the processes, files and tasks of a run.</summary>
public abstract class Workload
{
    public abstract string Name { get; }

    /// <summary>One line: what it does and where it comes from.</summary>
    public abstract string Summary { get; }

    /// <summary>Whether the workload stores to memory (the oracle is on by default for those).</summary>
    public virtual bool Stores => false;

    /// <summary>Creates files, mms and tasks; returns the pages the run will touch (for progress).</summary>
    public abstract long Setup(Sim sim);
}

/// <summary>Parameters users vary per run; each defaults to the published test's value.</summary>
public sealed record WorkloadParams
{
    /// <summary>Share of accesses that are stores, in percent, for the migration workloads (pmbench's read/write mix; 50 in 7e12beb8ca2a's test).</summary>
    public int StorePercent { get; init; } = 50;
}

/// <summary>Every workload by name. Adding a workload: one file, one line here.</summary>
public static class WorkloadRegistry
{
    private static readonly (string Name, Func<Workload> Create)[] Entries =
    [
        ("lru-file-mmap-read", () => new LruFileMmapRead()),
        ("lru-file-readonce", () => new LruFileReadonce()),
        ("lru-file-mmap-write", () => new LruFileMmapWrite()),
        ("mprotect-race", () => new MprotectRace()),
        ("migrate-bounce", () => new MigrateBounce()),
        ("numa-migrate", () => new NumaMigrate()),
        ("sparse-truncate", () => new SparseTruncate()),
    ];

    public static IReadOnlyList<string> Names { get; } = Entries.Select(e => e.Name).ToArray();

    /// <summary>Name and one-line summary of every workload.</summary>
    public static IEnumerable<(string Name, string Summary)> Describe() => Entries.Select(e => (e.Name, e.Create().Summary));

    public static Workload Create(string name)
    {
        foreach (var (n, create) in Entries)
        {
            if (n == name)
            {
                return create();
            }
        }
        throw new ConfigException($"unknown workload '{ParseArg.Clip(name)}'; allowed: {string.Join(", ", Names)}");
    }
}
