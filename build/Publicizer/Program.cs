// Publicizer INPUT.dll... OUTPUT_DIR
// Writes each input assembly to OUTPUT_DIR with every type, method and (non-clashing) field made
// public. The copies are only compiled against; at run time the real assemblies load, and
// [IgnoresAccessChecksTo] in the consuming assembly lets the runtime accept the access.
using Mono.Cecil;

if (args.Length < 2)
{
    Console.Error.WriteLine("usage: Publicizer INPUT.dll... OUTPUT_DIR");
    return 1;
}
string outputDirectory = args[^1];
Directory.CreateDirectory(outputDirectory);
var resolver = new DefaultAssemblyResolver();
foreach (var input in args[..^1]) resolver.AddSearchDirectory(Path.GetDirectoryName(Path.GetFullPath(input))!);

foreach (var input in args[..^1])
{
    using var assembly = AssemblyDefinition.ReadAssembly(input, new ReaderParameters { AssemblyResolver = resolver });
    foreach (var type in assembly.MainModule.GetTypes())
    {
        if (type.Name == "<Module>") continue;
        if (type.IsNested) type.IsNestedPublic = true;
        else type.IsPublic = true;
        // Protected members stay protected, so overrides in derived classes keep their usual modifiers;
        // explicit interface implementations (private virtual, dotted names) stay as they are.
        foreach (var method in type.Methods)
            if ((method.IsPrivate || method.IsAssembly || method.IsFamilyAndAssembly) && !(method.IsVirtual && method.Name.Contains('.')))
                method.IsPublic = true;
        var eventNames = type.Events.Select(e => e.Name).ToHashSet();
        foreach (var field in type.Fields)
            if ((field.IsPrivate || field.IsAssembly || field.IsFamilyAndAssembly) && !eventNames.Contains(field.Name) && !field.Name.Contains('<'))   // event backing fields share the event's name
                field.IsPublic = true;
    }
    string output = Path.Combine(outputDirectory, Path.GetFileName(input));
    assembly.Write(output);
    Console.WriteLine($"Publicizer: {input} -> {output}");
}
return 0;
