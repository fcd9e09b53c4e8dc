"""Who is calling: the identity check by application number and date of birth with its
guessing guard, the applications store and its CSV importer."""
