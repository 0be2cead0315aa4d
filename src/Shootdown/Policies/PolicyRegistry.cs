using Shootdown.Hardware;

namespace Shootdown.Policies;

/// <summary>Every flush policy by name. Adding a policy: one file, one line here.</summary>
public static class PolicyRegistry
{
    private static readonly (string Name, Func<PolicyParams, FlushPolicy> Create)[] Entries =
    [
        ("vanilla", p => new Vanilla(p)),
    ];

    public static IReadOnlyList<string> Names { get; } = Entries.Select(e => e.Name).ToArray();

    public static FlushPolicy Create(string name, PolicyParams p)
    {
        foreach (var (n, create) in Entries)
        {
            if (n == name)
            {
                return create(p);
            }
        }
        throw new ConfigException($"unknown policy '{name}'; allowed: {string.Join(", ", Names)}");
    }
}
