package org.mergeengine.engine;

import java.io.IOException;
import java.net.URL;
import java.util.ArrayList;
import java.util.Collections;
import java.util.Enumeration;
import java.util.List;

/**
 * The class loader a local engine's actor system runs with: it is the application's in every
 * respect but one, {@code reference.conf}, for which it lists only the Pekko modules a local merge
 * uses (the build unpacks their reference settings beside this class). The shaded jar's own
 * reference.conf also holds the remote, cluster and Jackson modules' settings; Pekko parses and
 * checks its configuration against the reference settings of its class loader, and that parse was
 * about a fifth of an engine's start on two cores. A cluster node keeps the application's loader.
 */
final class LocalReferenceLoader extends ClassLoader {
    /** The modules, in the order the shaded jar appends their settings (a later one wins). */
    static final List<String> LOCAL_MODULES = List.of("actor", "actor-typed", "stream");
    private static final String REFERENCE = "reference.conf";

    private static volatile ClassLoader instance;

    private final List<URL> references;

    static {
        registerAsParallelCapable();
    }

    private LocalReferenceLoader(ClassLoader parent, List<URL> references) {
        super(parent);
        this.references = references;
    }

    /** This loader, or the application's own when the build did not put the modules' settings on the class path. */
    static ClassLoader get() {
        ClassLoader l = instance;
        if (l == null) {
            synchronized (LocalReferenceLoader.class) {
                if (instance == null) instance = create(MergeEngine.class.getClassLoader());
                l = instance;
            }
        }
        return l;
    }

    static ClassLoader create(ClassLoader parent) {
        List<URL> refs = new ArrayList<>();
        for (String m : LOCAL_MODULES) {
            URL u = parent.getResource("org/mergeengine/engine/pekko-reference/" + m + "/" + REFERENCE);
            if (u == null) return parent;
            refs.add(u);
        }
        return new LocalReferenceLoader(parent, List.copyOf(refs));
    }

    @Override
    public URL getResource(String name) {
        return REFERENCE.equals(name) ? references.get(0) : super.getResource(name);
    }

    @Override
    public Enumeration<URL> getResources(String name) throws IOException {
        return REFERENCE.equals(name) ? Collections.enumeration(references) : super.getResources(name);
    }
}
