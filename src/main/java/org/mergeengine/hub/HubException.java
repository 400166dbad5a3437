package org.mergeengine.hub;

import org.mergeengine.MergeException;

/**
 * A hub or cache failure the user can act on (missing repository or file, offline miss, disk full, bad checksum).
 * Its message never holds a URL's user info.
 */
public class HubException extends MergeException {
    public HubException(String message) {
        super(Kind.USER, Urls.redact(message));
    }

    public HubException(String message, Throwable cause) {
        super(Kind.USER, Urls.redact(message), cause);
    }
}
