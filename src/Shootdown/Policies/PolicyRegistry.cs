using Shootdown.Hardware;

namespace Shootdown.Policies;

/// <summary>Every flush policy by name. Adding a policy: one file, one line here.</summary>
public static class PolicyRegistry
{
    private static readonly (string Name, Func<PolicyParams, FlushPolicy> Create)[] Entries =
    [
        ("vanilla", p => new Vanilla(p)),
        ("rfc-pfn32", p => new RfcPfnBatch(p, pageSized: false)),
        ("rfc-pfn-page", p => new RfcPfnBatch(p, pageSized: true)),
        ("linux-4.3", p => new Linux43(p)),
        ("v6-pfn32", p => new V6PfnBatch(p)),
        ("linux-4.13", p => new Linux413(p)),
        ("linux-6.4", p => new Linux64(p)),
    ];

    public static IReadOnlyList<string> Names { get; } = Entries.Select(e => e.Name).ToArray();

    /// <summary>Name and one-line summary of every policy, in registration order.</summary>
    public static IEnumerable<(string Name, string Summary)> Describe() =>
        Entries.Select(e => (e.Name, e.Create(new PolicyParams()).Summary));

    /// <summary>Policies whose PFN list length --batch-size sets.</summary>
    public static IReadOnlyList<string> WithPfnList { get; } =
        Entries.Where(e => e.Create(new PolicyParams()).HasPfnList).Select(e => e.Name).ToArray();

    public static FlushPolicy Create(string name, PolicyParams p)
    {
        foreach (var (n, create) in Entries)
        {
            if (n == name)
            {
                return create(p);
            }
        }
        throw new ConfigException($"unknown policy '{ParseArg.Clip(name)}'; allowed: {string.Join(", ", Names)}");
    }
}
