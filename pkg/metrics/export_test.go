package metrics

// FamiliesOf lets the tests describe a scrape as Families does.
var FamiliesOf = familiesOf
